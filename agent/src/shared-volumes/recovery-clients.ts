import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";

/** An NFSv4 client Ganesha recorded in its recovery root: it may reclaim its opens and locks after a restart. */
export interface RecoveredClient {
  /** The address the client's connection came from, as Ganesha wrote it (`::ffff:127.0.0.1`). */
  readonly address: string;
  /** The client's own owner string (`Linux NFSv4.2 host`, `Libnfs pid:…`). */
  readonly owner: string;
}

// Ganesha's fs backend keeps current clients in v4recov/<node> and, while in grace, the previous run's in v4old/<node>.
const GENERATIONS = ["v4recov", "v4old"];
// An entry is `ADDRESS-(LENGTH:OWNER)`: LENGTH is the owner's length in bytes, which lets an owner hold ')' or '-'.
const ENTRY = /^(.+?)-\((\d+):(.*)\)$/s;

function parseEntry(name: string): RecoveredClient | undefined {
  const match = ENTRY.exec(name);
  if (!match) return undefined;
  const [, address = "", length = "", owner = ""] = match;
  if (Buffer.byteLength(owner) !== Number(length)) return undefined;
  return { address, owner };
}

async function entries(root: string): Promise<{ path: string; client: RecoveredClient }[]> {
  const found: { path: string; client: RecoveredClient }[] = [];
  for (const generation of GENERATIONS) {
    const nodes = await readdir(join(root, generation)).catch(() => []);
    for (const node of nodes) {
      for (const name of await readdir(join(root, generation, node)).catch(() => [])) {
        const client = parseEntry(name);
        if (client) found.push({ path: join(root, generation, node, name), client });
      }
    }
  }
  return found;
}

/** The clients a Ganesha started on this recovery root would wait for, once each however often it is listed. */
export async function recoveredClients(root: string): Promise<RecoveredClient[]> {
  const unique = new Map<string, RecoveredClient>();
  for (const { client } of await entries(root)) unique.set(`${client.address}\0${client.owner}`, client);
  return [...unique.values()];
}

/**
 * Removes the recovery entries of the clients `gone` picks, so that a Ganesha started next does not hold its grace
 * period open for them. Safe only for clients that can hold no state any more: their node is fenced. Returns how
 * many entries went.
 */
export async function forgetClients(
  root: string,
  gone: (client: RecoveredClient) => boolean,
): Promise<number> {
  let removed = 0;
  for (const { path, client } of await entries(root)) {
    if (!gone(client)) continue;
    await rm(path, { recursive: true, force: true });
    removed++;
  }
  return removed;
}
