import { readFileSync } from "node:fs";
import fc from "fast-check";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { SpecError } from "../../agent/src/errors.js";
import {
  formatSize,
  formatSpec,
  type Kind,
  lookupKey,
  MAX_SIZE,
  type PartialVolumeSpec,
  parseSize,
  parseSpec,
  type SnapScheduleEntry,
  specFromFields,
  VOLUME_KEYS,
  type VolumeSpec,
  withDefaults,
} from "../../agent/src/volume-spec/index.js";
import { DOC_PATH, renderVolumeSpecDoc } from "../../scripts/gen-spec-docs.js";

const GIB = 2 ** 30;

/** Asserts that `run` throws a SpecError for `field` whose message contains every fragment. */
function rejects(run: () => unknown, field: string | undefined, ...fragments: string[]): void {
  let caught: unknown;
  try {
    run();
  } catch (error) {
    caught = error;
  }
  if (!(caught instanceof SpecError)) assert.unreachable(`expected a SpecError, got ${String(caught)}`);
  const error = caught as SpecError;
  assert.is(error.field, field, `field of: ${error.message}`);
  for (const fragment of fragments) {
    assert.ok(
      error.message.includes(fragment),
      `${JSON.stringify(error.message)} should include ${fragment}`,
    );
  }
}

test("the example spec parses to what it says", () => {
  const spec = parseSpec(
    "name=pgdata,size=20G,repl=3,shared=false,fs=ext4,io_profile=db,zones=us-east-1a;us-east-1b,labels=app:pg;tier:db",
  );
  assert.equal(spec, {
    name: "pgdata",
    size: 20 * GIB,
    repl: 3,
    shared: false,
    fs: "ext4",
    ioProfile: "db",
    zones: ["us-east-1a", "us-east-1b"],
    labels: { app: "pg", tier: "db" },
  });
  const full: VolumeSpec = {
    name: "pgdata",
    size: 20 * GIB,
    repl: 3,
    shared: false,
    sharedv4: false,
    fs: "ext4",
    blockSize: 4096,
    ioProfile: "db",
    ioPriority: "medium",
    nodes: [],
    zones: ["us-east-1a", "us-east-1b"],
    racks: [],
    labels: { app: "pg", tier: "db" },
    scale: 1,
    secure: false,
    snapSchedule: [],
    parent: undefined,
  };
  assert.equal(withDefaults(spec), full);
  // The table defines every field of VolumeSpec, and nothing else.
  assert.equal(VOLUME_KEYS.map((def) => def.field).sort(), Object.keys(full).sort());
});

test("defaults are Portworx's", () => {
  const spec = withDefaults({ name: "v" });
  assert.is(spec.size, GIB);
  assert.is(spec.repl, 1);
  assert.is(spec.fs, "ext4");
  assert.is(spec.blockSize, 4096);
  assert.is(spec.ioProfile, "auto");
  assert.is(spec.ioPriority, "medium");
  assert.is(spec.scale, 1);
  assert.is(spec.parent, undefined);
  // Parts read separately and merged still meet the rules between keys.
  const merged = { ...parseSpec("name=a,bs=65536"), ...specFromFields({ size: "4K" }) };
  rejects(() => withDefaults(merged), "size", "multiple of the block size (65536), not 4096");
  // Defaults are copied, so changing one volume's list cannot change another's.
  spec.zones.push("z");
  assert.equal(withDefaults({ name: "w" }).zones, []);
});

test("keys match in any case, and only whole", () => {
  assert.equal(parseSpec("NAME=a,Size=2g,REPL=2,Io_Profile=DB"), {
    name: "a",
    size: 2 * GIB,
    repl: 2,
    ioProfile: "db",
  });
  rejects(() => parseSpec("sharedv4_svc_name=x"), "sharedv4_svc_name", "unknown key");
  rejects(() => parseSpec("name=a,sharedv4_svc_name=x"), "sharedv4_svc_name", "unknown key");
  rejects(() => parseSpec("volname=x"), "volname", "unknown key");
});

test("a string without = is a plain volume name", () => {
  assert.equal(parseSpec("pgdata"), { name: "pgdata" });
  assert.equal(parseSpec("my_vol-1.b"), { name: "my_vol-1.b" });
  rejects(() => parseSpec("pg data"), "name", '"pg data"', "letters, digits");
  rejects(() => parseSpec("pg,data"), "name", '"pg,data"');
});

test("aliases: ha_level, bs, priority_io, cos, and JSON field names", () => {
  assert.equal(parseSpec("name=a,ha_level=2,bs=512,priority_io=low"), {
    name: "a",
    repl: 2,
    blockSize: 512,
    ioPriority: "low",
  });
  assert.is(parseSpec("name=a,cos=3").ioPriority, "high");
  assert.is(parseSpec("name=a,cos=2").ioPriority, "medium");
  assert.is(parseSpec("name=a,cos=1").ioPriority, "low");
  assert.is(parseSpec("name=a,io_priority=HIGH").ioPriority, "high");
  assert.is(parseSpec("name=a,blockSize=1024").blockSize, 1024);
  for (const def of VOLUME_KEYS) {
    for (const name of [def.name, def.field, ...def.aliases]) assert.is(lookupKey(name.toUpperCase()), def);
  }
});

test("sizes: every unit family, binary, bare number is GiB", () => {
  const units: [string[], number][] = [
    [["B", "b"], 1],
    [["K", "k", "KB", "kb", "KiB", "kib", "Ki"], 2 ** 10],
    [["M", "MB", "MiB", "Mi", "mib"], 2 ** 20],
    [["G", "GB", "GiB", "Gi", "g"], 2 ** 30],
    [["T", "TB", "TiB", "Ti", "t"], 2 ** 40],
    [["P", "PB", "PiB", "Pi", "p"], 2 ** 50],
  ];
  for (const [spellings, bytes] of units) {
    for (const unit of spellings) assert.is(parseSize(`3${unit}`), 3 * bytes, unit);
  }
  assert.is(parseSize("20"), 20 * GIB);
  assert.is(parseSize("0"), 0);
  assert.is(parseSpec("name=a,size=20").size, 20 * GIB);
  assert.is(parseSpec("name=a,size=64T").size, MAX_SIZE);
  assert.is(formatSize(20 * GIB), "20G");
  assert.is(formatSize(1536 * 2 ** 20), "1536M");
  assert.is(formatSize(4096), "4K");
  assert.is(formatSize(1023), "1023B");
  assert.is(formatSize(0), "0B");
  assert.is(formatSize(2 ** 50), "1P");
});

test("sizes: fractions, zero, odd multiples and giants are refused", () => {
  rejects(() => parseSize("1.5G"), "size", '"1.5G" is not a whole number', "1536M");
  rejects(() => parseSize("1.3B", "cache"), "cache", '"1.3B"');
  rejects(() => parseSpec("name=a,size=0"), "size", "more than 0", '"0"');
  rejects(() => parseSpec("name=a,size=0G"), "size", "more than 0");
  rejects(() => parseSpec("name=a,size=4097B"), "size", "multiple of the block size (4096)", '"4097B"');
  rejects(() => parseSpec("name=a,bs=65536,size=4K"), "size", "multiple of the block size (65536)");
  rejects(() => parseSpec("name=a,size=65T"), "size", "at most 64T", '"65T"');
  rejects(() => parseSpec("name=a,size=9P"), "size", '"9P" is too large');
  rejects(() => parseSize("12X"), "size", '"12X" is not a size');
  rejects(() => parseSize("1e3"), "size", "is not a size");
  rejects(() => parseSize("-1G"), "size", "is not a size");
  rejects(() => parseSize("20 G"), "size", "is not a size");
  assert.is(parseSpec("name=a,bs=65536,size=64K").size, 65536);
});

test("booleans: true/false, yes/no, on/off, 1/0 in any case", () => {
  // Every boolean key is planned, so a true reads as true and is then refused as not built.
  for (const word of ["true", "TRUE", "yes", "Yes", "on", "ON", "1"])
    rejects(() => parseSpec(`name=a,secure=${word}`), "secure", "not built yet");
  for (const word of ["false", "False", "no", "NO", "off", "Off", "0"]) {
    assert.is(parseSpec(`name=a,shared=${word}`).shared, false);
  }
  assert.equal(parseSpec("name=a,shared=false,sharedv4=no"), { name: "a", shared: false, sharedv4: false });
});

test("planned keys: the default is accepted, anything else refused naming what it waits for", () => {
  rejects(() => parseSpec("name=a,shared=true"), "shared", "waits for issue 14");
  rejects(() => parseSpec("name=a,sharedv4=on"), "sharedv4", "waits for issue 14");
  rejects(() => parseSpec("name=a,snap_schedule=daily=02:00#7"), "snap_schedule", "waits for issue 15");
  rejects(() => parseSpec("name=a,parent=b"), "parent", "waits for issue 15");
  rejects(() => specFromFields({ secure: true }), "secure", "only false, the default, is accepted");
  // The syntax is still checked first: a malformed value says what is wrong with it.
  rejects(() => parseSpec("name=a,snap_schedule=daily=25:00#7"), "snap_schedule", "hour must be 0 to 23");
  assert.equal(parseSpec("name=a,snap_schedule=,secure=off"), { name: "a", snapSchedule: [], secure: false });
});

test("lists and labels", () => {
  assert.equal(parseSpec("name=a,nodes=n1;node-2.example,racks=r_1"), {
    name: "a",
    nodes: ["n1", "node-2.example"],
    racks: ["r_1"],
  });
  assert.equal(parseSpec("name=a,labels=example.com/tier:db;app:;x.y:v-1_z"), {
    name: "a",
    labels: { "example.com/tier": "db", app: "", "x.y": "v-1_z" },
  });
  // An empty value is an explicit empty collection, which formatSpec writes for a full spec.
  assert.equal(parseSpec("name=a,zones=,labels=,snap_schedule="), {
    name: "a",
    zones: [],
    labels: {},
    snapSchedule: [],
  });
});

const schedule = lookupKey("snap_schedule")?.kind as Kind<SnapScheduleEntry[]>;

test("snap_schedule: Portworx forms, structured (the kind alone: the key is planned)", () => {
  const expected: SnapScheduleEntry[] = [
    { kind: "periodic", minutes: 60, keep: 10 },
    { kind: "daily", hour: 2, minute: 0, keep: 7 },
    { kind: "weekly", weekday: "sunday", hour: 2, minute: 0, keep: 4 },
    { kind: "monthly", day: 15, hour: 2, minute: 0, keep: 12 },
  ];
  const text = "periodic=60#10;daily=02:00#7;weekly=sunday@02:00#4;monthly=15@02:00#12";
  assert.equal(schedule.parse(text, "snap_schedule"), expected);
  assert.is(formatSpec({ name: "a", snapSchedule: expected }), `name=a,snap_schedule=${text}`);
  assert.equal(schedule.parse("Weekly=Friday@9:05#1", "snap_schedule"), [
    { kind: "weekly", weekday: "friday", hour: 9, minute: 5, keep: 1 },
  ]);
  assert.equal(schedule.parse(expected, "snap_schedule"), expected);
});

test("formatSpec writes the canonical form", () => {
  const spec = parseSpec(
    "Labels=tier:db;app:pg,HA_LEVEL=3,size=20480MiB,NAME=pgdata,bs=4096,cos=3,zones=b;a",
  );
  assert.is(
    formatSpec(spec),
    "name=pgdata,size=20G,repl=3,block_size=4096,io_priority=high,zones=b;a,labels=app:pg;tier:db",
  );
  assert.is(formatSpec({ name: "a", size: 1536 * 2 ** 20 }), "name=a,size=1536M");
  assert.is(formatSpec({ name: "a", parent: undefined }), "name=a");
  const full = formatSpec(withDefaults({ name: "a" }));
  assert.is(
    full,
    "name=a,size=1G,repl=1,shared=false,sharedv4=false,fs=ext4,block_size=4096,io_profile=auto," +
      "io_priority=medium,nodes=,zones=,racks=,labels=,scale=1,secure=false,snap_schedule=",
  );
  assert.equal(withDefaults(parseSpec(full)), withDefaults({ name: "a" }));
});

/** Malformed specs: [input, the field at fault, fragments the message must contain]. */
const MALFORMED: [string, string | undefined, ...string[]][] = [
  ["", "name", "needs a value"],
  ["name=a,,size=1G", undefined, "empty pair", '"name=a,,size=1G"'],
  [",name=a", undefined, "empty pair"],
  ["name=a,", undefined, "empty pair"],
  ["name=a,size", "size", 'expected key=value, not "size"'],
  ["name=a,bogus", "bogus", 'expected key=value, not "bogus"'],
  ["name=a,=5", undefined, 'no key before "="', '"=5"'],
  ["name=a,colour=blue", "colour", "unknown key", "known keys: name, size, repl,"],
  ["size=20G", "name", "is missing", '"size=20G"'],
  ["name=", "name", "needs a value"],
  ["name=-bad", "name", "starting with a letter or digit", '"-bad"'],
  [`name=${"a".repeat(64)}`, "name", "1 to 63"],
  ["name=a,name=b", "name", "given twice"],
  ["name=a,size=12X", "size", '"12X" is not a size'],
  ["name=a,size=1.5G", "size", '"1.5G"', "write 1536M"],
  ["name=a,size=", "size", "needs a value"],
  ["name=a,size=-1G", "size", '"-1G" is not a size'],
  ["name=a,repl=4", "repl", "must be 1, 2 or 3", '"4"'],
  ["name=a,repl=two", "repl", "must be 1, 2 or 3", '"two"'],
  ["name=a,ha_level=0", "repl", "must be 1, 2 or 3"],
  ["name=a,repl=2,ha_level=3", "repl", "given twice", '"ha_level"'],
  ["name=a,bs=512,block_size=512", "block_size", "given twice"],
  ["name=a,shared=maybe", "shared", "true or false", '"maybe"'],
  ["name=a,fs=zfs", "fs", "ext4, xfs or none", '"zfs"'],
  ["name=a,bs=1000", "block_size", "power of two from 512 to 65536", '"1000"'],
  ["name=a,bs=131072", "block_size", "power of two"],
  ["name=a,bs=4K", "block_size", "power of two", '"4K"'],
  ["name=a,io_profile=fast", "io_profile", "sequential, random, db, db_remote, cms, auto or none", '"fast"'],
  ["name=a,cos=4", "io_priority", "high, medium or low (or 3, 2, 1)", '"4"'],
  ["name=a,zones=us east", "zones", "each name", '"us east"'],
  ["name=a,zones=a;;b", "zones", "empty item", '"a;;b"'],
  ["name=a,nodes=n1;", "nodes", "empty item"],
  ["name=a,racks=r1;r1", "racks", '"r1" appears twice'],
  ["name=a,labels=app", "labels", '"app" is not of the form key:value'],
  ["name=a,labels=-x:y", "labels", "label keys", '"-x"'],
  ["name=a,labels=Bad_Prefix/x:y", "labels", "label keys"],
  ["name=a,labels=app:a b", "labels", "label values", '"a b"'],
  ["name=a,labels=a:1;a:2", "labels", '"a" appears twice'],
  ["name=a,scale=0", "scale", "must be 1 to 1024", '"0"'],
  ["name=a,scale=2000", "scale", "must be 1 to 1024"],
  ["name=a,secure=2", "secure", "true or false", '"2"'],
  [
    "name=a,snap_schedule=hourly=5#3",
    "snap_schedule",
    '"hourly=5#3" is not a schedule entry',
    "periodic=MINUTES",
  ],
  ["name=a,snap_schedule=daily=02:00", "snap_schedule", "is not a schedule entry"],
  ["name=a,snap_schedule=periodic=0#10", "snap_schedule", "minutes must be 1 to 1440", '"periodic=0#10"'],
  ["name=a,snap_schedule=daily=2pm#7", "snap_schedule", "must be HH:MM", '"daily=2pm#7"'],
  ["name=a,snap_schedule=daily=25:00#7", "snap_schedule", "hour must be 0 to 23"],
  ["name=a,snap_schedule=daily=02:60#7", "snap_schedule", "minute must be 0 to 59"],
  ["name=a,snap_schedule=weekly=funday@02:00#4", "snap_schedule", "weekday name", '"weekly=funday@02:00#4"'],
  ["name=a,snap_schedule=weekly=02:00#4", "snap_schedule", "is not a schedule entry"],
  ["name=a,snap_schedule=monthly=31@02:00#4", "snap_schedule", "day must be 1 to 28"],
  ["name=a,snap_schedule=daily=02:00#0", "snap_schedule", "keep must be 1 to 1000"],
  ["name=a,snap_schedule=daily=02:00#x", "snap_schedule", "keep must be 1 to 1000"],
  ["name=a,snap_schedule=daily=01:00#1;daily=03:00#1", "snap_schedule", '"daily" appears twice'],
  ["name=a,parent=bad/name", "parent", '"bad/name"'],
];

test(`${MALFORMED.length} malformed specs each fail with the key at fault and why`, () => {
  assert.ok(MALFORMED.length >= 25);
  for (const [input, field, ...fragments] of MALFORMED) rejects(() => parseSpec(input), field, ...fragments);
});

test("error messages put the key first and quote the value", () => {
  rejects(() => parseSpec("name=a,size=12X"), "size");
  assert.throws(
    () => parseSpec("name=a,size=12X"),
    (error: Error) => error.message.startsWith('size: "12X" is not'),
  );
  assert.throws(
    () => parseSpec("name=a,repl=4"),
    (error: Error) => error.message === 'repl: must be 1, 2 or 3, not "4"',
  );
  assert.throws(
    () => parseSpec("colour=red"),
    (error: Error) => error.message.startsWith("colour: unknown key (known"),
  );
});

test("specFromFields: spec strings, aliases and field names", () => {
  const fields = {
    name: "a",
    size: "20G",
    ha_level: "3",
    shared: "no",
    ioProfile: "db",
    COS: "3",
    zones: "z1;z2",
    labels: "app:pg",
    snap_schedule: "",
    parent: undefined,
  };
  assert.equal(specFromFields(fields), {
    name: "a",
    size: 20 * GIB,
    repl: 3,
    shared: false,
    ioProfile: "db",
    ioPriority: "high",
    zones: ["z1", "z2"],
    labels: { app: "pg" },
    snapSchedule: [],
  });
  assert.equal(specFromFields({}), {});
});

test("specFromFields: JSON values of the right type", () => {
  assert.equal(
    specFromFields({
      size: 8192,
      repl: 2,
      secure: false,
      blockSize: 4096,
      scale: 4,
      nodes: ["n1", "n2"],
      labels: { app: "pg", "example.com/tier": "" },
      snapSchedule: [],
    }),
    {
      size: 8192,
      repl: 2,
      secure: false,
      blockSize: 4096,
      scale: 4,
      nodes: ["n1", "n2"],
      labels: { app: "pg", "example.com/tier": "" },
      snapSchedule: [],
    },
  );
});

test("specFromFields: wrong types and values fail as the string form does", () => {
  rejects(
    () => specFromFields({ size: true }),
    "size",
    'must be a size such as "20G" or a number of bytes, not true',
  );
  rejects(() => specFromFields({ size: 0 }), "size", "more than 0, not 0");
  rejects(() => specFromFields({ size: 4097 }), "size", "multiple of the block size", "not 4097");
  rejects(() => specFromFields({ size: 1.5 }), "size", "whole number of bytes");
  rejects(() => specFromFields({ size: "1.5G" }), "size", '"1.5G" is not a whole number');
  rejects(() => specFromFields({ repl: 2.5 }), "repl", "must be 1, 2 or 3, not 2.5");
  rejects(() => specFromFields({ repl: null }), "repl", "must be 1, 2 or 3, not null");
  rejects(() => specFromFields({ shared: 1 }), "shared", "true or false", "not 1");
  rejects(() => specFromFields({ fs: ["ext4"] }), "fs", 'not ["ext4"]');
  rejects(() => specFromFields({ zones: 5 }), "zones", "must be a list", "not 5");
  rejects(() => specFromFields({ zones: ["a", 5] }), "zones", "each name", "not 5");
  rejects(() => specFromFields({ zones: ["a", "a"] }), "zones", '"a" appears twice');
  rejects(() => specFromFields({ labels: ["a"] }), "labels", "key:value pairs");
  rejects(() => specFromFields({ labels: { a: 1 } }), "labels", "label values", "not 1");
  rejects(() => specFromFields({ snapSchedule: "x" }), "snap_schedule", '"x" is not a schedule entry');
  rejects(
    () => specFromFields({ snapSchedule: [{ kind: "daily", hour: 2 }] }),
    "snap_schedule",
    "minute must be",
  );
  rejects(
    () => specFromFields({ snapSchedule: [{ kind: "daily", hour: 2, minute: 0, keep: 1, every: 2 }] }),
    "snap_schedule",
    'unknown field "every"',
  );
  rejects(
    () => specFromFields({ snapSchedule: [{ kind: "hourly" }] }),
    "snap_schedule",
    "each entry must be",
  );
  rejects(() => specFromFields({ size: 4096, SIZE: 8192 }), "size", "given twice");
  rejects(() => specFromFields({ repl: 1, ha_level: 1 }), "repl", "given twice");
  rejects(() => specFromFields({ colour: "red" }), "colour", "unknown key");
  rejects(() => specFromFields({ name: "" }), "name", "needs a value");
  // The same mistake reads the same from a spec string and from a field.
  assert.is(
    catchMessage(() => specFromFields({ repl: "4" })),
    catchMessage(() => parseSpec("name=a,repl=4")),
  );
  assert.is(
    catchMessage(() => specFromFields({ labels: "app" })),
    catchMessage(() => parseSpec("name=a,labels=app")),
  );
});

function catchMessage(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    return (error as Error).message;
  }
  return "(no error)";
}

// Arbitraries for valid specs.
const volumeName = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/);
const placeName = fc.stringMatching(/^[A-Za-z0-9_.-]{1,63}$/);
const labelName = fc.stringMatching(/^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$/);
const dnsPrefix = fc.stringMatching(
  /^[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?){0,3}$/,
);
const labelKey = fc.oneof(
  labelName,
  fc.tuple(dnsPrefix, labelName).map(([prefix, name]) => `${prefix}/${name}`),
);
/** Plain objects, as JSON and the parser make, so deep equality holds. */
const plain = { noNullPrototype: true };
const hour = fc.integer({ min: 0, max: 23 });
const minute = fc.integer({ min: 0, max: 59 });
const keep = fc.integer({ min: 1, max: 1000 });
const entry: fc.Arbitrary<SnapScheduleEntry> = fc.oneof(
  fc.record(
    { kind: fc.constant("periodic" as const), minutes: fc.integer({ min: 1, max: 1440 }), keep },
    plain,
  ),
  fc.record({ kind: fc.constant("daily" as const), hour, minute, keep }, plain),
  fc.record(
    {
      kind: fc.constant("weekly" as const),
      weekday: fc.constantFrom("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"),
      hour,
      minute,
      keep,
    },
    plain,
  ),
  fc.record(
    { kind: fc.constant("monthly" as const), day: fc.integer({ min: 1, max: 28 }), hour, minute, keep },
    plain,
  ),
);
const places = fc.uniqueArray(placeName, { maxLength: 4 });

const volumeSpec: fc.Arbitrary<VolumeSpec> = fc
  .constantFrom(512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
  .chain((blockSize) =>
    fc.record(
      {
        name: volumeName,
        size: fc.integer({ min: 1, max: MAX_SIZE / blockSize }).map((blocks) => blocks * blockSize),
        repl: fc.constantFrom(1 as const, 2 as const, 3 as const),
        // Planned keys take only their defaults (any other value is refused: a test above).
        shared: fc.constant(false),
        sharedv4: fc.constant(false),
        fs: fc.constantFrom("ext4" as const, "xfs" as const, "none" as const),
        blockSize: fc.constant(blockSize),
        ioProfile: fc.constantFrom(
          ...(["sequential", "random", "db", "db_remote", "cms", "auto", "none"] as const),
        ),
        ioPriority: fc.constantFrom("high" as const, "medium" as const, "low" as const),
        nodes: places,
        zones: places,
        racks: places,
        labels: fc.dictionary(labelKey, fc.oneof(fc.constant(""), labelName), {
          maxKeys: 4,
          noNullPrototype: true,
        }),
        scale: fc.integer({ min: 1, max: 1024 }),
        secure: fc.constant(false),
        snapSchedule: fc.constant([]),
        parent: fc.constant(undefined),
      },
      plain,
    ),
  );

test("property: any valid snapshot schedule survives format then parse", () => {
  fc.assert(
    fc.property(fc.uniqueArray(entry, { selector: (e) => e.kind, maxLength: 4 }), (entries) => {
      assert.equal(schedule.parse(schedule.format(entries), "snap_schedule"), entries);
    }),
    { numRuns: 300 },
  );
});

test("property: any valid VolumeSpec survives format then parse", () => {
  fc.assert(
    fc.property(volumeSpec, (spec) => {
      assert.equal(withDefaults(parseSpec(formatSpec(spec))), spec);
    }),
    { numRuns: 500 },
  );
});

test("property: any partial spec reads back with exactly its keys", () => {
  const partial = fc
    .tuple(volumeSpec, fc.subarray(VOLUME_KEYS.map((def) => def.field)))
    .map(([spec, fields]) => {
      const picked: Record<string, unknown> = { name: spec.name };
      for (const field of fields) if (spec[field] !== undefined) picked[field] = spec[field];
      // A size is only valid against its block size, so the two travel together.
      if (picked.size !== undefined) picked.blockSize = spec.blockSize;
      return picked as PartialVolumeSpec;
    });
  fc.assert(
    fc.property(partial, (spec) => {
      assert.equal(parseSpec(formatSpec(spec)), spec);
    }),
    { numRuns: 300 },
  );
});

test("property: formatSize and parseSize round-trip", () => {
  const shifted = fc
    .tuple(fc.integer({ min: 0, max: 2 ** 20 }), fc.integer({ min: 0, max: 50 }))
    .map(([n, shift]) => n * 2 ** shift)
    .filter(Number.isSafeInteger);
  fc.assert(
    fc.property(fc.oneof(fc.maxSafeNat(), shifted), (bytes) => {
      assert.is(parseSize(formatSize(bytes)), bytes);
    }),
  );
});

/** Runs `run`, failing the property if it throws anything but a SpecError. */
function onlySpecErrors(run: () => unknown): void {
  try {
    run();
  } catch (error) {
    if (!(error instanceof SpecError)) throw error;
  }
}

test("property: arbitrary input throws nothing but SpecError", () => {
  const specish = fc.string({
    unit: fc.constantFrom(..."=,;:#@/.-_ aZ09nmesizrplG", "name", "size", "labels"),
  });
  fc.assert(
    fc.property(fc.string(), (input) => onlySpecErrors(() => parseSpec(input))),
    { numRuns: 1000 },
  );
  fc.assert(
    fc.property(specish, (input) => onlySpecErrors(() => parseSpec(input))),
    { numRuns: 1000 },
  );
  const names = VOLUME_KEYS.flatMap((def) => [def.name, def.field, ...def.aliases]);
  const fields = fc.dictionary(fc.constantFrom(...names), fc.anything(), { maxKeys: 3 });
  fc.assert(
    fc.property(fields, (input) => onlySpecErrors(() => specFromFields(input))),
    { numRuns: 1000 },
  );
});

test("docs/volume-spec.md is what scripts/gen-spec-docs.ts generates", () => {
  assert.fixture(readFileSync(DOC_PATH, "utf8"), renderVolumeSpecDoc());
});

test.run();
