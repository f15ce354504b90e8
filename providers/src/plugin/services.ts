import type { ServiceDefinition } from "@grpc/grpc-js";
import protobuf from "protobufjs/light.js";
import descriptorJson from "../../proto/descriptors.json" with { type: "json" };

/**
 * gRPC service definitions from the descriptors the build precompiled out of providers/proto/*.proto, read with
 * protobufjs's light build: no .proto parsing and none of proto-loader's descriptor reflection at start-up, which
 * Terraform pays 2 to 5 times per command. Messages use the .proto's own (snake_case) field names.
 */

/** Decoded messages: int64 as numbers, enums as numbers, unset fields absent, a oneof's case named. */
const AS_OBJECT: protobuf.IConversionOptions = {
  longs: Number,
  enums: Number,
  defaults: false,
  oneofs: true,
};

const root = protobuf.Root.fromJSON(descriptorJson as protobuf.INamespace);

function codec(type: protobuf.Type) {
  return {
    serialize: (value: object) => Buffer.from(type.encode(type.fromObject(value)).finish()),
    deserialize: (bytes: Buffer) => type.toObject(type.decode(bytes), AS_OBJECT),
  };
}

/** The definition grpc-js serves for the service `fullName` (e.g. `tfplugin6.Provider`). */
export function serviceDefinition(fullName: string): ServiceDefinition {
  const service = root.lookupService(fullName);
  const definition: Record<string, ServiceDefinition[string]> = {};
  for (const method of service.methodsArray) {
    method.resolve();
    const request = codec(method.resolvedRequestType as protobuf.Type);
    const response = codec(method.resolvedResponseType as protobuf.Type);
    definition[method.name] = {
      path: `/${fullName}/${method.name}`,
      requestStream: method.requestStream === true,
      responseStream: method.responseStream === true,
      requestSerialize: request.serialize,
      requestDeserialize: request.deserialize,
      responseSerialize: response.serialize,
      responseDeserialize: response.deserialize,
      originalName: method.name,
    };
  }
  return definition;
}
