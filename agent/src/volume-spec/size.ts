import { SpecError } from "../errors.js";
import { show } from "./show.js";

/** The binary units, largest first: formatSize writes the first that divides a size exactly. */
const UNITS = [
  ["P", 2 ** 50],
  ["T", 2 ** 40],
  ["G", 2 ** 30],
  ["M", 2 ** 20],
  ["K", 2 ** 10],
  ["B", 1],
] as const;

const GIB = 2 ** 30;
const SIZE = /^(\d+)(\.\d+)?([a-z]*)$/i;
const UNIT = /^([kmgtp])(?:b|ib|i)?$/;

/** Bytes per unit for any spelling (`K`, `kb`, `KiB`, `Ki`, ...), all binary; `""` is GiB, as in Portworx. */
function unitBytes(unit: string): number | undefined {
  if (unit === "") return GIB;
  if (unit === "b") return 1;
  const letter = UNIT.exec(unit)?.[1];
  return letter === undefined ? undefined : 1024 ** ("kmgtp".indexOf(letter) + 1);
}

/**
 * Reads a size such as `20G`, `1536MiB` or `4096b` into bytes. Only the grammar is checked here (a whole,
 * non-negative number of bytes); what range a size must fall in is up to the key that holds it. Fractions are
 * an error rather than silently truncated as Portworx does, and the message offers the exact equivalent.
 */
export function parseSize(value: string, field = "size"): number {
  const match = SIZE.exec(value);
  const unit = match ? unitBytes((match[3] ?? "").toLowerCase()) : undefined;
  if (!match || unit === undefined) {
    throw new SpecError(
      field,
      `${show(value)} is not a size (a whole number with an optional unit B, K, M, G, T or P; a bare number is GiB)`,
    );
  }
  const bytes = Number(`${match[1]}${match[2] ?? ""}`) * unit;
  if (match[2] !== undefined) {
    const exact = Number.isSafeInteger(bytes) ? `; write ${formatSize(bytes)}` : "";
    throw new SpecError(field, `${show(value)} is not a whole number (fractions are not rounded${exact})`);
  }
  if (!Number.isSafeInteger(bytes)) throw new SpecError(field, `${show(value)} is too large`);
  return bytes;
}

/** Writes bytes in the largest binary unit that holds them exactly (`20G`, `1536M`, `4K`), as parseSize reads. */
export function formatSize(bytes: number): string {
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new RangeError(`${bytes} is not a number of bytes`);
  const [unit, factor] = UNITS.find(([, factor]) => bytes >= factor && bytes % factor === 0) ?? ["B", 1];
  return `${bytes / factor}${unit}`;
}
