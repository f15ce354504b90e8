import { test } from "uvu";
import * as assert from "uvu/assert";
import { decodeRequest, encodeRequest, FrameReader, Op } from "../../agent/src/transport/wire.js";

test("a request survives encoding, whatever the size of its offset and epoch, and in any cut of the stream", () => {
  const requests = [
    { op: Op.Write, id: 1, epoch: 1, offset: 0, count: 3 },
    { op: Op.Read, id: 2 ** 32 - 1, epoch: 2 ** 40 + 7, offset: 5 * 2 ** 40 + 4096, count: 65536 },
    { op: Op.Flush, id: 3, epoch: 2 ** 32, offset: 2 ** 53 - 1, count: 0 },
  ];
  const payload = Buffer.from("abc");
  const stream = Buffer.concat(requests.flatMap((r, i) => encodeRequest(r, i === 0 ? payload : undefined)));
  for (const cut of [1, 3, 7, 29, stream.length]) {
    const reader = new FrameReader();
    const frames: Buffer[] = [];
    for (let at = 0; at < stream.length; at += cut)
      frames.push(...reader.push(stream.subarray(at, at + cut)));
    const decoded = frames.map(decodeRequest);
    assert.equal(
      decoded.map(({ payload: _, ...r }) => r),
      requests,
      `cut every ${cut} bytes`,
    );
    assert.ok(decoded[0]?.payload.equals(payload));
  }
});

test("a frame longer than the limit is refused", () => {
  const header = Buffer.alloc(4);
  header.writeUInt32BE(2 ** 31);
  assert.throws(() => new FrameReader().push(header), /exceeds/);
});

test.run();
