/**
 * Requests made in one turn of the event loop, handed over together: a burst
 * of connects each subscribes its user channel and takes its mailbox, and
 * those become one SUBSCRIBE and one script call (src/bus/redis.ts,
 * src/mailbox/redis.ts). The first request of a batch schedules its flush;
 * a batch holds at most `max` requests. `flush` answers each request by
 * position, with a value or an Error for that one; if it throws, every
 * request of the batch fails with that error.
 */
interface Waiting<Item, Result> {
  item: Item;
  resolve: (result: Result) => void;
  reject: (error: unknown) => void;
}

export interface TickBatchOptions<Item, Result> {
  max: number;
  schedule: (run: () => void) => void;
  flush: (items: Item[]) => Promise<ReadonlyArray<Result | Error>>;
}

export class TickBatch<Item, Result> {
  #open: Array<Waiting<Item, Result>> | undefined;

  constructor(private readonly options: TickBatchOptions<Item, Result>) {}

  add(item: Item): Promise<Result> {
    return new Promise<Result>((resolve, reject) => {
      let batch = this.#open;
      if (!batch || batch.length >= this.options.max) {
        const fresh: Array<Waiting<Item, Result>> = [];
        this.#open = batch = fresh;
        this.options.schedule(() => void this.#run(fresh));
      }
      batch.push({ item, resolve, reject });
    });
  }

  async #run(batch: Array<Waiting<Item, Result>>): Promise<void> {
    if (this.#open === batch) this.#open = undefined;
    try {
      const results = await this.options.flush(batch.map((waiting) => waiting.item));
      if (results.length !== batch.length) throw new Error(`batch flush answered ${results.length} of ${batch.length} requests`);
      batch.forEach((waiting, i) => {
        const result = results[i] as Result | Error;
        if (result instanceof Error) waiting.reject(result);
        else waiting.resolve(result);
      });
    } catch (error) {
      for (const waiting of batch) waiting.reject(error);
    }
  }
}
