import { generateKeyPairSync, randomBytes, sign } from "node:crypto";

/** A certificate and its private key, both PEM. */
export interface CertificatePem {
  certPem: string;
  keyPem: string;
}

// The certificate is written as DER by hand, with node:crypto only: an X.509 library (@peculiar/x509 and its ASN.1
// stack) cost about 100 ms to load, at every start without a cached certificate. The certificate is always the same
// shape, so a few DER encoders suffice. OIDs are written out in their DER form.
const OID = {
  ecdsaWithSha256: "2a8648ce3d040302",
  commonName: "550403",
  organization: "55040a",
  basicConstraints: "551d13",
  keyUsage: "551d0f",
  extKeyUsage: "551d25",
  subjectAltName: "551d11",
  serverAuth: "2b06010505070301",
  clientAuth: "2b06010505070302",
};

/** One DER element: tag, length (short or long form), contents. */
function der(tag: number, ...contents: Buffer[]): Buffer {
  const body = Buffer.concat(contents);
  const n = body.length;
  const length = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  return Buffer.concat([Buffer.from([tag, ...length]), body]);
}

const sequence = (...items: Buffer[]) => der(0x30, ...items);
const oid = (hex: string) => der(0x06, Buffer.from(hex, "hex"));
const TRUE = der(0x01, Buffer.from([0xff]));
const octets = (...contents: Buffer[]) => der(0x04, ...contents);
/** UTCTime up to 2049, GeneralizedTime from 2050 (RFC 5280 4.1.2.5), to the second. */
function time(date: Date): Buffer {
  const text = date.toISOString().replace(/[-:T]|\.\d+/g, "");
  return date.getUTCFullYear() < 2050 ? der(0x17, Buffer.from(text.slice(2))) : der(0x18, Buffer.from(text));
}

/** CN=localhost, O=HashiCorp: what go-plugin puts in its own certificates. */
const NAME = sequence(
  der(0x31, sequence(oid(OID.commonName), der(0x0c, Buffer.from("localhost")))),
  der(0x31, sequence(oid(OID.organization), der(0x0c, Buffer.from("HashiCorp")))),
);
const SIGNATURE_ALGORITHM = sequence(oid(OID.ecdsaWithSha256));
const EXTENSIONS = der(
  0xa3,
  sequence(
    // A CA (critical): the client's root pool holds exactly this certificate.
    sequence(oid(OID.basicConstraints), TRUE, octets(sequence(TRUE))),
    // digitalSignature, keyEncipherment, keyCertSign (bits 0, 2, 5; 2 unused bits), critical.
    sequence(oid(OID.keyUsage), TRUE, octets(der(0x03, Buffer.from([0x02, 0xa4])))),
    sequence(oid(OID.extKeyUsage), octets(sequence(oid(OID.serverAuth), oid(OID.clientAuth)))),
    sequence(oid(OID.subjectAltName), octets(sequence(der(0x82, Buffer.from("localhost"))))),
  ),
);

/**
 * A fresh self-signed certificate for `localhost`, valid for `validMs`, as go-plugin makes its own: the client
 * trusts exactly this certificate (it arrives in the handshake line), and we trust exactly the one Terraform put
 * in PLUGIN_CLIENT_CERT. ECDSA P-256 because it is the quickest key to make, and start-up counts.
 */
export function selfSignedCertificate(validMs: number): CertificatePem {
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  // A positive serial of 16 random bytes, its first byte non-zero so that the DER integer is minimal.
  const serial = randomBytes(16);
  serial[0] = (serial[0] ?? 0) & 0x7f || 1;
  const now = Date.now();
  const tbs = sequence(
    der(0xa0, der(0x02, Buffer.from([2]))), // version 3
    der(0x02, serial),
    SIGNATURE_ALGORITHM,
    NAME,
    sequence(time(new Date(now - 30_000)), time(new Date(now + validMs))),
    NAME,
    publicKey.export({ type: "spki", format: "der" }),
    EXTENSIONS,
  );
  // node:crypto signs ECDSA as DER (r, s), which is what X.509 carries in its BIT STRING (no unused bits).
  const signature = sign("sha256", tbs, privateKey);
  const cert = sequence(tbs, SIGNATURE_ALGORITHM, der(0x03, Buffer.from([0]), signature));
  const lines = cert.toString("base64").match(/.{1,64}/g) ?? [];
  return {
    certPem: `-----BEGIN CERTIFICATE-----\n${lines.join("\n")}\n-----END CERTIFICATE-----\n`,
    keyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
  };
}
