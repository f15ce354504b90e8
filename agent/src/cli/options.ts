import { SpecError } from "../errors.js";

/** Commander's collector for a repeatable option (`--pool A --pool B`). */
export const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** `90`, `90s`, `15m`, `24h` or `7d`, in seconds; a SpecError on `field` otherwise. */
export function parseDuration(text: string, field = "ttl"): number {
  const match = /^(\d+)([smhd]?)$/.exec(text.trim());
  if (!match) throw new SpecError(field, `must be seconds, or a number with s, m, h or d, not "${text}"`);
  const unit = { "": 1, s: 1, m: 60, h: 3600, d: 86_400 }[match[2] as "" | "s" | "m" | "h" | "d"];
  return Number(match[1]) * unit;
}
