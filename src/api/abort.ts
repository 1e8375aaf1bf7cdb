// Waiting on shared work with one's own deadline.

/**
 * The answer, or the caller's signal's reason when it gives up first. The work itself goes on for
 * the others who wait on it: only this caller stops waiting.
 */
export function raced<T>(answer: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return answer;
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const quit = (): void => {
      reject(signal.reason as Error);
    };
    signal.addEventListener('abort', quit, { once: true });
    answer.then(
      (value) => {
        signal.removeEventListener('abort', quit);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', quit);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
