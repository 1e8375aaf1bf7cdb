// Per-request options for client-node: an AbortSignal on the request, so that a reconcile that
// reaches its deadline cancels what it has in flight instead of leaving it to land later.

import { Observable, type ConfigurationOptions, type RequestContext, type ResponseContext } from '@kubernetes/client-node';

export function withSignal(signal: AbortSignal | undefined, options?: ConfigurationOptions): ConfigurationOptions | undefined {
  if (signal === undefined) return options;
  const middleware = {
    pre: (context: RequestContext): Observable<RequestContext> => {
      context.setSignal(signal);
      return new Observable(Promise.resolve(context));
    },
    post: (response: ResponseContext): Observable<ResponseContext> => new Observable(Promise.resolve(response)),
  };
  return { ...options, middleware: [...(options?.middleware ?? []), middleware], middlewareMergeStrategy: 'append' };
}
