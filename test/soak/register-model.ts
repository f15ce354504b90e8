import { createHash } from "node:crypto";

/** Bytes per block the campaign writes and reads: one NBD request each. */
export const BLOCK = 4096;
const MAGIC = 0x48465352; // "HFSR"

/**
 * The content of write `seq` to `block`: a header naming both, then bytes derived from them, so a read tells which
 * write it returns, and a torn or foreign block is recognised as such.
 */
export function blockContent(block: number, seq: number): Buffer {
  const out = Buffer.alloc(BLOCK);
  out.writeUInt32BE(MAGIC, 0);
  out.writeUInt32BE(block, 4);
  out.writeUInt32BE(seq, 8);
  const fill = createHash("sha256").update(`${block}:${seq}`).digest();
  for (let at = 16; at < BLOCK; at += fill.length) fill.copy(out, at, 0, Math.min(fill.length, BLOCK - at));
  return out;
}

/** What a read returned: the never-written block (zeros), one write, or bytes no write made. */
export type Observed = { kind: "zero" } | { kind: "write"; seq: number } | { kind: "corrupt" };

export function decode(block: number, data: Buffer): Observed {
  if (data.equals(ZERO)) return { kind: "zero" };
  if (data.length !== BLOCK || data.readUInt32BE(0) !== MAGIC || data.readUInt32BE(4) !== block) {
    return { kind: "corrupt" };
  }
  const seq = data.readUInt32BE(8);
  return data.equals(blockContent(block, seq)) ? { kind: "write", seq } : { kind: "corrupt" };
}

const ZERO = Buffer.alloc(BLOCK);

export type AnomalyKind =
  /** A read returned a value older than an acknowledged (or already observed) write: a lost or stale write. */
  | "stale-read"
  /** A read returned a write that was never issued, or one that an acknowledged later write had replaced. */
  | "impossible-read"
  /** A read returned bytes no write made (torn, misplaced, garbage). */
  | "corrupt-read"
  /** After quiescence, the replicas differ. */
  | "replicas-differ"
  /** After quiescence, a block does not hold its last acknowledged write. */
  | "lost-write"
  /** The volume did not come back: no engine served it within the bound after a fault. */
  | "unavailable";

export interface Anomaly {
  kind: AnomalyKind;
  /** Milliseconds since the campaign started. */
  at: number;
  detail: string;
}

/**
 * The model every read is checked against: each block is a register written by one client at a time. A write is
 * acknowledged, or indeterminate (failed, timed out, its connection died: it may or may not have landed). A read must
 * return the latest write confirmed before it (acknowledged, or seen by an earlier read), or an indeterminate write
 * issued after that one; once a read has seen an indeterminate write, it is confirmed: later reads may not go back.
 */
export class RegisterModel {
  private readonly blocks = new Map<number, { confirmed: number; pending: number[] }>();
  readonly anomalies: Anomaly[] = [];

  constructor(private readonly clock: () => number) {}

  /** A write of `seq` to `block` is about to be sent (before any answer: it may land from now on). */
  invoked(block: number, seq: number): void {
    this.state(block).pending.push(seq);
  }

  /** The write was acknowledged: it is the block's value until a later one. */
  acknowledged(block: number, seq: number): void {
    const s = this.state(block);
    s.confirmed = seq;
    s.pending = s.pending.filter((p) => p > seq);
  }

  /**
   * A read of `block` returned `data`; an anomaly is recorded if no history allows it. `final` marks the read after
   * quiescence, where an older value means an acknowledged write was lost.
   */
  read(block: number, data: Buffer, final = false): void {
    const s = this.state(block);
    const seen = decode(block, data);
    if (seen.kind === "corrupt") {
      this.record(
        "corrupt-read",
        `block ${block}: bytes no write made (first 16: ${data.subarray(0, 16).toString("hex")})`,
      );
      return;
    }
    const seq = seen.kind === "zero" ? 0 : seen.seq;
    if (seq === s.confirmed) return;
    if (s.pending.includes(seq)) {
      s.confirmed = seq;
      s.pending = s.pending.filter((p) => p > seq);
      return;
    }
    const older = seq < s.confirmed;
    this.record(
      older ? (final ? "lost-write" : "stale-read") : "impossible-read",
      `block ${block}: read write ${seq}, expected ${s.confirmed}${s.pending.length ? ` or one of ${s.pending.join(", ")}` : ""}`,
    );
  }

  /** Blocks and their confirmed writes, for the final read after quiescence. */
  expected(): Array<{ block: number; confirmed: number; pending: number[] }> {
    return [...this.blocks.entries()].map(([block, s]) => ({
      block,
      confirmed: s.confirmed,
      pending: [...s.pending],
    }));
  }

  record(kind: AnomalyKind, detail: string): void {
    this.anomalies.push({ kind, at: this.clock(), detail });
  }

  private state(block: number) {
    let s = this.blocks.get(block);
    if (!s) {
      s = { confirmed: 0, pending: [] };
      this.blocks.set(block, s);
    }
    return s;
  }
}
