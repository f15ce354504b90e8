import { readFile } from "node:fs/promises";
import { SpecError } from "../errors.js";
import type { EtcdTls } from "./etcd-store.js";

/** The settings that name etcd's TLS files, by the field each error names. */
export interface EtcdTlsFiles {
  etcdCa: string;
  etcdCert: string;
  etcdKey: string;
}

const CERTIFICATE = /-----BEGIN CERTIFICATE-----/;
const PRIVATE_KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----/;

async function readPem(
  field: keyof EtcdTlsFiles,
  file: string,
  what: string,
  label: RegExp,
): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new SpecError(field, `cannot read ${file}: ${(err as Error).message}`);
  }
  if (!label.test(text)) throw new SpecError(field, `${file} holds no PEM ${what}`);
  return text;
}

/** Reads etcd's CA and this node's client certificate and key; an error names the setting at fault. */
export async function readEtcdTls(files: EtcdTlsFiles): Promise<EtcdTls> {
  return {
    caPem: await readPem("etcdCa", files.etcdCa, "certificate", CERTIFICATE),
    certPem: await readPem("etcdCert", files.etcdCert, "certificate", CERTIFICATE),
    keyPem: await readPem("etcdKey", files.etcdKey, "private key", PRIVATE_KEY),
  };
}
