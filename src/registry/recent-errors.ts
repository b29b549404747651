/**
 * A small ring of the latest errors of one node, shown by the admin page.
 * Consecutive errors with the same code fold into one entry with a count, so
 * one noisy client cannot push everything else out.
 */
import type { RecentError } from './registry.js';

export class RecentErrors {
  private readonly entries: RecentError[] = [];

  constructor(
    private readonly size = 20,
    private readonly now: () => number = Date.now,
  ) {}

  add(code: string, detail?: string): void {
    const last = this.entries[this.entries.length - 1];
    if (last && last.code === code && last.detail === detail) {
      last.count += 1;
      last.ts = this.now();
      return;
    }
    this.entries.push({ ts: this.now(), code, count: 1, ...(detail === undefined ? {} : { detail: detail.slice(0, 200) }) });
    if (this.entries.length > this.size) this.entries.shift();
  }

  /** Oldest first. */
  list(): RecentError[] {
    return this.entries.map((entry) => ({ ...entry }));
  }
}
