/**
 * A store may answer synchronously (memory) or with a promise (SQLite, Redis). Code on the hit path keeps
 * a synchronous answer synchronous, so a hit from memory never waits for the microtask queue.
 */
export type MaybePromise<T> = T | Promise<T>

export function isPromise<T>(value: MaybePromise<T>): value is Promise<T> {
  return typeof (value as Promise<T> | undefined)?.then === 'function'
}

/**
 * Continues with a value that may or may not be a promise, staying synchronous when it is not one.
 * (Not named `then`: a module exporting `then` makes its namespace a thenable, which breaks `import()`.)
 */
export function andThen<T, R>(value: MaybePromise<T>, next: (value: T) => MaybePromise<R>): MaybePromise<R> {
  return isPromise(value) ? value.then(next) : next(value)
}
