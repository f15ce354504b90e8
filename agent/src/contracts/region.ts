/** Bytes per activity-log bit and per resync checksum: the unit reconciled after a crash. */
export const REGION_SIZE = 4 * 1024 * 1024;
