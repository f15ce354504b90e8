import { ConflictError, SpecError } from "../../errors.js";
import { lookupKey, type PartialVolumeSpec, parseSpec, specFromFields } from "../../volume-spec/index.js";
import { checkSetName, type VolumeView } from "../../volumes/index.js";

/**
 * What a Docker volume name asks for: Docker keeps calling a volume by the string it was created with, which is
 * an inline spec (`name=pg,size=10G`) or a bare name, so every call reads it again. `Opts` (from
 * `docker volume create -o`) take the same keys; a key given both ways must say the same thing.
 */
export function readDockerName(given: string, opts: Record<string, string> = {}): PartialVolumeSpec {
  const fromName = parseSpec(given);
  const fromOpts = specFromFields(opts);
  for (const [field, value] of Object.entries(fromOpts)) {
    const named = fromName[field as keyof PartialVolumeSpec];
    if (named !== undefined && JSON.stringify(named) !== JSON.stringify(value)) {
      const key = lookupKey(field)?.name ?? field;
      throw new SpecError(
        key,
        `the volume name says ${keyValue(field, named)} but Opts say ${keyValue(field, value)}`,
      );
    }
  }
  const spec = { ...fromName, ...fromOpts, name: fromName.name };
  checkSetName(spec);
  return spec;
}

/** `key=value` as a spec writes it, for messages and comparisons. */
export function keyValue(field: string, value: unknown): string {
  const def = lookupKey(field);
  return def ? `${def.name}=${def.kind.format(value as never)}` : `${field}=${String(value)}`;
}

/**
 * Refuses an existing volume that does not match what a create asks for. Size may have grown since (volumes grow
 * online), so a volume at least as large as asked matches; every other key given must be equal.
 */
export function checkCompatible(existing: VolumeView, asked: PartialVolumeSpec): void {
  for (const [field, value] of Object.entries(asked)) {
    if (field === "name" || value === undefined) continue;
    const has = existing[field as keyof VolumeView];
    // Compared in spec form, which is canonical (labels sorted, sizes in one unit).
    const same =
      field === "size"
        ? (has as number) >= (value as number)
        : keyValue(field, has) === keyValue(field, value);
    if (!same) {
      throw new ConflictError(
        "volume.incompatible",
        `volume "${existing.name}" exists with ${keyValue(field, has)}, not ${keyValue(field, value)}`,
        lookupKey(field)?.name,
      );
    }
  }
}
