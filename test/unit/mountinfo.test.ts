import { test } from "uvu";
import * as assert from "uvu/assert";
import { parseMountInfo } from "../../agent/src/frontend/mountinfo.js";

// Lines as the kernel writes them: optional tags before " - " vary in number, and a space in a path is \040.
const MOUNTINFO = [
  "22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw",
  "97 22 7:3 / /var/lib/holdfast/mounts/pg\\040data rw,relatime shared:50 master:2 - ext4 /dev/loop3 rw",
  "98 22 7:3 / /var/lib/kubelet/pods/a/volumes/pv ro,relatime - ext4 /dev/loop3 rw",
  "99 22 0:45 / /tmp/fuse rw,nosuid,nodev - fuse holdfast rw,user_id=0",
  "",
].join("\n");

test("mountinfo: mount point unescaped, device, read-only flag, type and source, whatever the optional tags", () => {
  const [root, staged, published, fuse] = parseMountInfo(MOUNTINFO);
  assert.equal(root, {
    mountPoint: "/",
    device: "259:1",
    readOnly: false,
    fsType: "ext4",
    source: "/dev/vda1",
  });
  assert.is(staged?.mountPoint, "/var/lib/holdfast/mounts/pg data");
  assert.is(staged?.device, published?.device, "a bind mount shows its source's device");
  assert.is(published?.readOnly, true);
  assert.equal([fuse?.fsType, fuse?.source], ["fuse", "holdfast"]);
  assert.is(parseMountInfo(MOUNTINFO).length, 4, "blank lines are no mounts");
});

test.run();
