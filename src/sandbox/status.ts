// Failures as the API server reports them: a `meta/v1 Status` with the reason and code that
// client-go, client-node and kubectl switch on (NotFound, AlreadyExists, Conflict, Invalid, ...).

export type StatusReason =
  | 'BadRequest'
  | 'NotFound'
  | 'AlreadyExists'
  | 'Conflict'
  | 'Invalid'
  | 'Forbidden'
  | 'MethodNotAllowed'
  | 'NotAcceptable'
  | 'UnsupportedMediaType'
  | 'RequestEntityTooLarge'
  | 'Expired'
  | 'InternalError'
  | 'ServiceUnavailable';

export interface StatusCause {
  reason?: string;
  message: string;
  field?: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: StatusCause[];
}

export interface Status {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure' | 'Success';
  message?: string;
  reason?: StatusReason;
  details?: StatusDetails;
  code: number;
}

/** A request that fails with a Status; thrown inside handlers, written by the server. */
export class ApiError extends Error {
  readonly status: Status;

  constructor(status: Status) {
    super(status.message);
    this.status = status;
  }
}

function failure(code: number, reason: StatusReason, message: string, details?: StatusDetails): ApiError {
  return new ApiError({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    ...(details === undefined ? {} : { details }),
    code,
  });
}

/** How the API server names a resource in messages: `configmaps`, `modelcanaries.modelcanary.io`. */
export interface QualifiedResource {
  group: string;
  plural: string;
}

export function qualified(resource: QualifiedResource): string {
  return resource.group === '' ? resource.plural : `${resource.plural}.${resource.group}`;
}

function resourceDetails(resource: QualifiedResource, name: string): StatusDetails {
  return { name, ...(resource.group === '' ? {} : { group: resource.group }), kind: resource.plural };
}

export function notFound(resource: QualifiedResource, name: string): ApiError {
  return failure(404, 'NotFound', `${qualified(resource)} "${name}" not found`, resourceDetails(resource, name));
}

export function pathNotFound(): ApiError {
  return failure(404, 'NotFound', 'the server could not find the requested resource', {});
}

export function alreadyExists(resource: QualifiedResource, name: string): ApiError {
  return failure(409, 'AlreadyExists', `${qualified(resource)} "${name}" already exists`, resourceDetails(resource, name));
}

export function conflict(resource: QualifiedResource, name: string, why = 'the object has been modified; please apply your changes to the latest version and try again'): ApiError {
  return failure(409, 'Conflict', `Operation cannot be fulfilled on ${qualified(resource)} "${name}": ${why}`, resourceDetails(resource, name));
}

/** 422 with one cause per field, worded as the API server words them. */
export function invalid(kind: string, group: string, name: string, causes: StatusCause[]): ApiError {
  const listed = causes.map((c) => (c.field === undefined ? c.message : `${c.field}: ${c.message}`));
  const summary = listed.length === 1 ? (listed[0] ?? '') : `[${listed.join(', ')}]`;
  const groupKind = group === '' ? kind : `${kind}.${group}`;
  return failure(422, 'Invalid', `${groupKind} "${name}" is invalid: ${summary}`, { name, ...(group === '' ? {} : { group }), kind, causes });
}

export function badRequest(message: string): ApiError {
  return failure(400, 'BadRequest', message);
}

export function forbidden(resource: QualifiedResource, name: string, why: string): ApiError {
  return failure(403, 'Forbidden', `${qualified(resource)} "${name}" is forbidden: ${why}`, resourceDetails(resource, name));
}

export function methodNotAllowed(method: string): ApiError {
  return failure(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource (${method})`, {});
}

export function unsupportedMediaType(contentType: string, accepted: string[]): ApiError {
  return failure(415, 'UnsupportedMediaType', `the body of the request was in an unknown format "${contentType}" - accepted media types include: ${accepted.join(', ')}`);
}

export function tooLarge(): ApiError {
  return failure(413, 'RequestEntityTooLarge', 'Request entity too large: limit is 3145728');
}

export function expired(requested: string, oldest: number): ApiError {
  return failure(410, 'Expired', `too old resource version: ${requested} (${oldest})`);
}

export function internalError(message: string): ApiError {
  return failure(500, 'InternalError', `Internal error occurred: ${message}`, { causes: [{ message }] });
}

/** What a DELETE answers when the object is gone at once. */
export function success(resource: QualifiedResource, name: string, uid: string | undefined): Status {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Success',
    details: { ...resourceDetails(resource, name), ...(uid === undefined ? {} : { uid }) },
    code: 200,
  };
}
