import { z } from "zod";
import { NAME_PATTERN } from "../names.js";
import { scalar } from "./kinds.js";

/** Zod string schema with one message for every way a value can fail (wrong type, wrong form). */
function pattern(test: (text: string) => boolean, message: string) {
  return z.string({ error: message }).refine(test, { error: message });
}

const VOLUME_NAME = NAME_PATTERN;
/** Zones, racks and nodes: unlike Portworx, digits are fine (`us-east-1a`). */
const PLACE_NAME = /^[A-Za-z0-9_.-]{1,63}$/;
/** The name part of a Kubernetes label key, and a label value when not empty. */
const LABEL_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$/;

/** A Kubernetes label key: a name, optionally after a DNS subdomain prefix and `/` (`example.com/tier`). */
function isLabelKey(text: string): boolean {
  const slash = text.indexOf("/");
  if (slash === -1) return LABEL_NAME.test(text);
  const prefix = text.slice(0, slash);
  return prefix.length <= 253 && DNS_SUBDOMAIN.test(prefix) && LABEL_NAME.test(text.slice(slash + 1));
}

/** A volume's name, also what `parent` names. */
export const volumeName = scalar({
  type: "string",
  summary: 'volume name: 1-63 letters, digits, "_", "-", "." starting with a letter or digit',
  schema: pattern(
    (text) => VOLUME_NAME.test(text),
    'must be 1 to 63 letters, digits, "_", "-" or ".", starting with a letter or digit',
  ),
});

/** One node, zone or rack name in a placement list. */
export const placeName = scalar({
  type: "string",
  summary: 'name: 1-63 letters, digits, "-", "_", "."',
  schema: pattern(
    (text) => PLACE_NAME.test(text),
    'each name must be 1 to 63 letters, digits, "-", "_" or "."',
  ),
});

export const labelKey = scalar({
  type: "string",
  summary: "Kubernetes label key",
  schema: pattern(
    isLabelKey,
    'label keys must be 1 to 63 letters, digits, "-", "_" or "." starting and ending with a letter or digit, ' +
      'optionally after a DNS prefix and "/"',
  ),
});

export const labelValue = scalar({
  type: "string",
  summary: "Kubernetes label value",
  schema: pattern(
    (text) => text === "" || LABEL_NAME.test(text),
    'label values must be empty or 1 to 63 letters, digits, "-", "_" or "." starting and ending with a letter or digit',
  ),
});
