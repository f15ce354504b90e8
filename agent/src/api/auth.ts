import { createHash, timingSafeEqual } from "node:crypto";

/** Compares a presented bearer token with the expected one in constant time (hashes equalise lengths). */
export function tokenMatches(header: string | undefined, expected: string): boolean {
  if (!header?.startsWith("Bearer ")) return false;
  const presented = createHash("sha256").update(header.slice("Bearer ".length)).digest();
  return timingSafeEqual(presented, createHash("sha256").update(expected).digest());
}
