import { z } from "zod";

/** A volume id: it names a replica's directory and store keys, so nothing but hex. */
export const VolumeId = z.string().regex(/^[0-9a-f]{1,64}$/, "must be 1 to 64 lowercase hex digits");
