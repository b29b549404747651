/**
 * The nesting limit of client frames (docs/protocol.md, Limits). JSON.parse
 * takes any depth, but the server encodes `data` again to deliver it, and
 * JSON.stringify recurses: a few thousand levels overflow the stack. So a
 * frame nested deeper than this is refused at decode time with
 * `invalid_frame`, before anything else reads it.
 */

/** Most levels of objects and arrays in one frame, the frame object itself being level 1 (so `data` may nest 31 more). */
export const MAX_FRAME_DEPTH = 32;

const QUOTE = 34;
const BACKSLASH = 92;
const OPEN_BRACKET = 91;
const CLOSE_BRACKET = 93;
const OPEN_BRACE = 123;
const CLOSE_BRACE = 125;

/**
 * Whether valid JSON `text` nests objects and arrays deeper than `max`.
 * Cheap on the hot path: a frame can only be that deep if it opens more than
 * `max` brackets in all, which two native `indexOf` walks tell (most frames
 * open a handful); only then is the text scanned, strings skipped.
 */
export function nestsDeeperThan(text: string, max: number = MAX_FRAME_DEPTH): boolean {
  let opened = 0;
  for (let at = text.indexOf('{'); at !== -1 && opened <= max; at = text.indexOf('{', at + 1)) opened += 1;
  for (let at = text.indexOf('['); at !== -1 && opened <= max; at = text.indexOf('[', at + 1)) opened += 1;
  if (opened <= max) return false;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i += 1) {
    const code = text.charCodeAt(i);
    if (inString) {
      if (code === BACKSLASH) i += 1;
      else if (code === QUOTE) inString = false;
    } else if (code === QUOTE) {
      inString = true;
    } else if (code === OPEN_BRACE || code === OPEN_BRACKET) {
      depth += 1;
      if (depth > max) return true;
    } else if (code === CLOSE_BRACE || code === CLOSE_BRACKET) {
      depth -= 1;
    }
  }
  return false;
}
