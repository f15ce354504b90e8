import { readFile } from "node:fs/promises";

/** One mount as /proc/self/mountinfo shows it. */
export interface MountEntry {
  mountPoint: string;
  /** `major:minor` of the file system's device: a bind mount shows the same as its source. */
  device: string;
  readOnly: boolean;
  fsType: string;
  /** What was mounted: a device path, or the file system's own name for one without a device (`fuse`, `tmpfs`). */
  source: string;
}

/**
 * The lines of a mountinfo file, in its order (a later mount on one path hides the earlier ones). The fields before
 * the ` - ` separator vary in number (optional tags such as `shared:1`), so each side is read by its own positions.
 */
export function parseMountInfo(text: string): MountEntry[] {
  return text
    .split("\n")
    .filter((line) => line.includes(" - "))
    .map((line) => {
      const [left = "", right = ""] = line.split(" - ", 2);
      const fields = left.split(" ");
      const [fsType = "", source = ""] = right.split(" ");
      return {
        mountPoint: unescapeOctal(fields[4] ?? ""),
        device: fields[2] ?? "",
        readOnly: (fields[5] ?? "").split(",").includes("ro"),
        fsType,
        source: unescapeOctal(source),
      };
    });
}

/** The mounts of this process's mount namespace. */
export async function readMounts(): Promise<MountEntry[]> {
  return parseMountInfo(await readFile("/proc/self/mountinfo", "utf8"));
}

/** mountinfo writes space, tab, newline and backslash as octal escapes. */
function unescapeOctal(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
}
