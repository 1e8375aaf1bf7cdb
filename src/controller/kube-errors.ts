// What went wrong in a Kubernetes API call, in the API server's own words: client-node's error
// message is its HTTP dump (status line, headers, the raw body), in which the one sentence a
// person needs ("... cannot get resource "leases" ...") sits past any sensible cut.

import { ApiException } from '@kubernetes/client-node';

export function apiErrorMessage(error: unknown): string {
  if (error instanceof ApiException) {
    const body: unknown = typeof error.body === 'string' ? safeParse(error.body) : error.body;
    const status = typeof body === 'object' && body !== null ? (body as { message?: unknown; reason?: unknown }) : {};
    const reason = typeof status.reason === 'string' ? ` ${status.reason}` : '';
    const message = typeof status.message === 'string' ? status.message : 'no message';
    return `HTTP ${error.code}${reason}: ${message}`.slice(0, 500);
  }
  return (error instanceof Error ? error.message : String(error)).slice(0, 500);
}

function safeParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
