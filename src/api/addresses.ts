// Addresses the operator allows (Prometheus, webhooks) and addresses fit to print, shared by the
// metrics providers and the webhook callers.

/**
 * True when `address` is `prefix` or below it: same scheme, host and port (compared as URLs,
 * so case and default ports do not matter), and a path that continues the prefix's path at a
 * segment boundary. http://prom:9090/mimir allows http://prom:9090/mimir/tenant-a, not
 * http://prom:9090/mimirx or http://prom:9090.evil.
 */
export function isUnder(address: string, prefix: string): boolean {
  let a: URL;
  let p: URL;
  try {
    a = new URL(address);
    p = new URL(prefix);
  } catch {
    return false;
  }
  if (a.username !== '' || a.password !== '' || a.search !== '' || a.hash !== '') return false;
  if (a.protocol !== p.protocol || a.host !== p.host) return false;
  const base = p.pathname.replace(/\/+$/, '');
  const path = a.pathname.replace(/\/+$/, '');
  return path === base || path.startsWith(`${base}/`);
}

/** An address fit to print: credentials, a query and a fragment removed. */
export function redact(address: string): string {
  try {
    const url = new URL(address);
    const hidden = url.username !== '' || url.password !== '';
    url.username = '';
    url.password = '';
    url.search = '';
    url.hash = '';
    const text = url.toString().replace(/\/$/, '');
    return hidden ? text.replace('://', '://[redacted]@') : text;
  } catch {
    return '(an address that is not a URL)';
  }
}

/** Whether a URL carries credentials (user:password@), whatever the scheme's case. */
export function holdsCredentials(address: string): boolean {
  try {
    const url = new URL(address);
    return url.username !== '' || url.password !== '';
  } catch {
    return /^[a-z][a-z0-9+.-]*:\/\/[^/]*@/i.test(address);
  }
}
