/** Await `fn`, but no longer than `ms`; then run `fallback`. Errors are ignored: the caller is closing. */
export async function closeWithin(fn: () => Promise<void>, ms: number, fallback?: () => void): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([
    fn().then(
      () => false,
      () => false,
    ),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), ms);
    }),
  ]);
  clearTimeout(timer);
  if (timedOut) fallback?.();
}
