import { ConflictError } from "../errors.js";

/** Raised when a request carries an epoch that is not the replica's admitted one: its engine is stale. */
export class FencedError extends ConflictError {
  constructor(
    readonly epoch: number,
    /** The highest epoch the replica has been asked to admit. */
    readonly highest: number,
  ) {
    super("replica.fenced", `epoch ${epoch} is not this replica's epoch ${highest}: the engine is fenced`);
  }
}
