/**
 * AMQP topic matching, shared by the memory log and the tests, so both lanes
 * route exactly like a RabbitMQ topic exchange: words are separated by `.`,
 * `*` matches exactly one word, `#` matches zero or more words.
 * https://www.rabbitmq.com/tutorials/amqp-concepts#exchange-topic
 */

/** Does routing key `key` match binding `pattern`? */
export function topicMatches(pattern: string, key: string): boolean {
  return matchWords(pattern.split('.'), 0, key.split('.'), 0);
}

function matchWords(pattern: string[], p: number, key: string[], k: number): boolean {
  // Bounded by pattern length × key length: each `#` tries each remaining suffix once.
  while (p < pattern.length) {
    const word = pattern[p];
    if (word === '#') {
      // Collapse runs of `#`; then try every split point.
      while (pattern[p + 1] === '#') p++;
      if (p === pattern.length - 1) return true;
      for (let skip = k; skip <= key.length; skip++) {
        if (matchWords(pattern, p + 1, key, skip)) return true;
      }
      return false;
    }
    if (k >= key.length) return false;
    if (word !== '*' && word !== key[k]) return false;
    p++;
    k++;
  }
  return k === key.length;
}

const WORD = /^(?:[A-Za-z0-9_-]+|\*|#)$/;

/** Binding patterns are words of `A-Z a-z 0-9 _ -`, `*` or `#`, joined by `.`; at most 255 bytes (AMQP shortstr). */
export function isValidPattern(pattern: string): boolean {
  return pattern.length > 0 && pattern.length <= 255 && pattern.split('.').every((w) => WORD.test(w));
}
