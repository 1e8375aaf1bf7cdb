// kubectl's typed commands (`kubectl create namespace|configmap|secret`) send protobuf, not JSON,
// and client-go does not fall back when a server refuses it. This decodes the Kubernetes
// protobuf envelope and the few messages those commands send; other kinds get 415, with the
// advice to use `kubectl apply -f`, which sends JSON.

import type { JsonObject } from './json.ts';
import { ApiError } from './status.ts';

export const PROTOBUF = 'application/vnd.kubernetes.protobuf';
const MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]);

class Reader {
  private position = 0;
  private readonly bytes: Buffer;

  constructor(bytes: Buffer) {
    this.bytes = bytes;
  }

  done(): boolean {
    return this.position >= this.bytes.length;
  }

  varint(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      const byte = this.bytes[this.position];
      if (byte === undefined) throw new Error('truncated varint');
      this.position += 1;
      result += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) return result;
      shift += 7;
    }
  }

  field(): { number: number; wire: number } {
    const key = this.varint();
    return { number: Math.floor(key / 8), wire: key % 8 };
  }

  bytesField(): Buffer {
    const length = this.varint();
    const slice = this.bytes.subarray(this.position, this.position + length);
    if (slice.length !== length) throw new Error('truncated field');
    this.position += length;
    return slice;
  }

  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.position += 8;
    else if (wire === 2) this.bytesField();
    else if (wire === 5) this.position += 4;
    else throw new Error(`unsupported wire type ${wire}`);
  }
}

type FieldHandler = (reader: Reader, wire: number) => void;

function readMessage(bytes: Buffer, handlers: Record<number, FieldHandler>): void {
  const reader = new Reader(bytes);
  while (!reader.done()) {
    const { number, wire } = reader.field();
    const handler = handlers[number];
    if (handler === undefined) reader.skip(wire);
    else handler(reader, wire);
  }
}

const text = (reader: Reader): string => reader.bytesField().toString('utf8');

/** gogo-protobuf writes empty strings that JSON would omit; leave them out, as JSON decoding does. */
function set(object: JsonObject, key: string, value: string): void {
  if (value !== '') object[key] = value;
}

function mapEntry(reader: Reader, valueAsBase64: boolean): [string, string] {
  let key = '';
  let value = '';
  readMessage(reader.bytesField(), {
    1: (r) => (key = text(r)),
    2: (r) => {
      const raw = r.bytesField();
      value = valueAsBase64 ? raw.toString('base64') : raw.toString('utf8');
    },
  });
  return [key, value];
}

/** A metav1.Time; the zero time (which gogo-protobuf always writes) as ''. */
function time(bytes: Buffer): string {
  let seconds = 0;
  readMessage(bytes, { 1: (r) => (seconds = r.varint()) });
  return seconds === 0 ? '' : new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function objectMeta(bytes: Buffer): JsonObject {
  const meta: JsonObject = {};
  const labels: Record<string, string> = {};
  const annotations: Record<string, string> = {};
  const finalizers: string[] = [];
  const owners: JsonObject[] = [];
  readMessage(bytes, {
    1: (r) => { set(meta, 'name', text(r)); },
    2: (r) => { set(meta, 'generateName', text(r)); },
    3: (r) => { set(meta, 'namespace', text(r)); },
    5: (r) => { set(meta, 'uid', text(r)); },
    6: (r) => { set(meta, 'resourceVersion', text(r)); },
    7: (r) => {
      const generation = r.varint();
      if (generation !== 0) meta.generation = generation;
    },
    8: (r) => { set(meta, 'creationTimestamp', time(r.bytesField())); },
    11: (r) => {
      const [k, v] = mapEntry(r, false);
      labels[k] = v;
    },
    12: (r) => {
      const [k, v] = mapEntry(r, false);
      annotations[k] = v;
    },
    13: (r) => {
      const owner: JsonObject = {};
      readMessage(r.bytesField(), {
        1: (o) => { set(owner, 'kind', text(o)); },
        3: (o) => { set(owner, 'name', text(o)); },
        4: (o) => { set(owner, 'uid', text(o)); },
        5: (o) => { set(owner, 'apiVersion', text(o)); },
        6: (o) => (owner.controller = o.varint() !== 0),
        7: (o) => (owner.blockOwnerDeletion = o.varint() !== 0),
      });
      owners.push(owner);
    },
    14: (r) => finalizers.push(text(r)),
  });
  if (Object.keys(labels).length > 0) meta.labels = labels;
  if (Object.keys(annotations).length > 0) meta.annotations = annotations;
  if (finalizers.length > 0) meta.finalizers = finalizers;
  if (owners.length > 0) meta.ownerReferences = owners;
  return meta;
}

type Decoder = (bytes: Buffer) => JsonObject;

const DECODERS: Record<string, Decoder> = {
  'v1/Namespace': (bytes) => {
    const object: JsonObject = {};
    readMessage(bytes, {
      1: (r) => (object.metadata = objectMeta(r.bytesField())),
      2: (r) => {
        const finalizers: string[] = [];
        readMessage(r.bytesField(), { 1: (s) => finalizers.push(text(s)) });
        object.spec = { finalizers };
      },
    });
    return object;
  },
  'v1/ConfigMap': (bytes) => {
    const object: JsonObject = {};
    const data: Record<string, string> = {};
    const binaryData: Record<string, string> = {};
    readMessage(bytes, {
      1: (r) => (object.metadata = objectMeta(r.bytesField())),
      2: (r) => {
        const [k, v] = mapEntry(r, false);
        data[k] = v;
      },
      3: (r) => {
        const [k, v] = mapEntry(r, true);
        binaryData[k] = v;
      },
      4: (r) => (object.immutable = r.varint() !== 0),
    });
    if (Object.keys(data).length > 0) object.data = data;
    if (Object.keys(binaryData).length > 0) object.binaryData = binaryData;
    return object;
  },
  'v1/Secret': (bytes) => {
    const object: JsonObject = {};
    const data: Record<string, string> = {};
    const stringData: Record<string, string> = {};
    readMessage(bytes, {
      1: (r) => (object.metadata = objectMeta(r.bytesField())),
      2: (r) => {
        const [k, v] = mapEntry(r, true);
        data[k] = v;
      },
      3: (r) => { set(object, 'type', text(r)); },
      4: (r) => {
        const [k, v] = mapEntry(r, false);
        stringData[k] = v;
      },
      5: (r) => (object.immutable = r.varint() !== 0),
    });
    if (Object.keys(data).length > 0) object.data = data;
    if (Object.keys(stringData).length > 0) object.stringData = stringData;
    return object;
  },
};

function unsupported(message: string): ApiError {
  return new ApiError({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason: 'UnsupportedMediaType', code: 415 });
}

/** The JSON form of a protobuf request body. */
export function decodeProtobuf(body: Buffer): JsonObject {
  if (!body.subarray(0, 4).equals(MAGIC)) throw unsupported('the protobuf body does not start with the Kubernetes envelope');
  let apiVersion = '';
  let kind = '';
  let raw: Buffer = Buffer.alloc(0);
  try {
    readMessage(body.subarray(4), {
      1: (r) => { readMessage(r.bytesField(), { 1: (t) => (apiVersion = text(t)), 2: (t) => (kind = text(t)) }); },
      2: (r) => (raw = r.bytesField()),
    });
    const decoder = DECODERS[`${apiVersion}/${kind}`];
    if (decoder === undefined) {
      throw unsupported(`the sandbox decodes protobuf only for Namespace, ConfigMap and Secret, not ${apiVersion} ${kind}; send JSON (kubectl apply -f does)`);
    }
    return { apiVersion, kind, ...decoder(raw) };
  } catch (error) {
    if (error instanceof ApiError) throw error;
    throw unsupported(`cannot decode the protobuf body: ${(error as Error).message}`);
  }
}
