import { test } from "uvu";
import * as assert from "uvu/assert";
import { InputError } from "../../agent/src/errors.js";
import { filesystemId, ganeshaConfig } from "../../agent/src/shared-volumes/index.js";

const base = {
  volumeId: "00c0ffee12345678",
  volumeName: "pgdata",
  path: "/var/lib/holdfast/shared/pgdata/data",
  recoveryRoot: "/var/lib/holdfast/shared/pgdata/nfs-recovery",
  bindAddress: "127.0.0.1",
  port: 20490,
};

test("the file system id follows the volume id, not the node: the same on every node, different per volume", () => {
  assert.is(filesystemId(base.volumeId), filesystemId("00c0ffee12345678"));
  assert.is.not(filesystemId(base.volumeId), filesystemId("00c0ffee12345679"));
  assert.match(filesystemId(base.volumeId), /^\d+\.\d+$/);
  assert.match(
    ganeshaConfig(base),
    new RegExp(`Filesystem_Id = ${filesystemId(base.volumeId).replace(".", "\\.")};`),
  );
});

test("the export is NFSv4 over TCP on loopback, its pseudo path the volume's name, its recovery on the volume", () => {
  const config = ganeshaConfig(base);
  assert.match(config, /Bind_addr = 127\.0\.0\.1;/);
  assert.match(config, /Protocols = 4;/);
  assert.match(config, /Enable_UDP = false;/);
  assert.match(config, /Pseudo = "\/pgdata";/);
  assert.match(config, /RecoveryRoot = "\/var\/lib\/holdfast\/shared\/pgdata\/nfs-recovery";/);
});

const refusals: [string, Record<string, unknown>, RegExp][] = [
  ["path", { path: '/data"; } EXPORT { Path = "/' }, /^path: must be an absolute path/],
  ["path", { path: "relative/dir" }, /^path: must be an absolute path/],
  ["path", { path: "/srv/../etc" }, /^path: must not contain '\.\.'/],
  ["recoveryRoot", { recoveryRoot: "/r\n}" }, /^recoveryRoot: must be an absolute path/],
  ["volumeName", { volumeName: "a b" }, /^volumeName: must be 1-63/],
  ["bindAddress", { bindAddress: "0.0.0.0" }, /^bindAddress: must be a loopback/],
  ["port", { port: 0 }, /^port: /],
  ["leaseSeconds", { leaseSeconds: 3 }, /^leaseSeconds: /],
  ["graceSeconds", { graceSeconds: 500 }, /^graceSeconds: /],
];
for (const [field, override, message] of refusals) {
  test(`a bad ${field} (${JSON.stringify(Object.values(override)[0])}) is refused, naming it`, () => {
    const err = (() => {
      try {
        ganeshaConfig({ ...base, ...override });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    assert.instance(err, InputError);
    assert.is((err as InputError).field, field);
    assert.match((err as InputError).message, message);
  });
}

test.run();
