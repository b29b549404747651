/** Health of one lane (bus, history, presence, events), as shown by /readyz and the admin page. */
export interface LaneHealth {
  /** Lane name: `bus`, `history`, `presence`, `events`. */
  lane: string;
  /** Implementation: `memory`, `redis`, `rabbitmq`, ... */
  driver: string;
  ok: boolean;
  /** Why the lane is not ok, for humans; on an ok lane, a `warning: …` about its setup (e.g. the bus's Redis output-buffer limit). */
  detail?: string;
}
