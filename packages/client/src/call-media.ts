/**
 * The local half of mute and camera toggles. Off stops the kind's tracks, so
 * the camera light and the browser's microphone indicator go out, and
 * empties its sender with `replaceTrack(null)`; on gets a fresh track and
 * puts it back on that sender. Neither direction renegotiates. A kind the
 * call never sent is added as a new track (one renegotiation).
 */
import type { MediaState } from './call-control.js';
import type { MediaStreamTrackType, MediaStreamType, RTCPeerConnectionType } from './webrtc-types.js';

/** A kind of local track: the microphone (`audio`) or the camera (`video`). */
export type TrackKind = 'audio' | 'video';

/** Gets a fresh local track of one kind (when the microphone or camera is switched back on). */
export type GetTrack = (kind: TrackKind) => Promise<MediaStreamTrackType>;

/** `getUserMedia` for one kind: the default `getTrack`. */
export async function userMediaTrack(kind: TrackKind): Promise<MediaStreamTrackType> {
  const devices = (globalThis as { navigator?: { mediaDevices?: MediaDevices } }).navigator?.mediaDevices;
  if (!devices) throw new Error('no navigator.mediaDevices to switch the microphone or camera on; pass getTrack');
  const stream = await devices.getUserMedia(kind === 'audio' ? { audio: true } : { video: true });
  const track = stream.getTracks()[0];
  if (!track) throw new Error(`getUserMedia gave no ${kind} track`);
  return track;
}

export class LocalMedia {
  readonly #pc: RTCPeerConnectionType;
  readonly #getTrack: (kind: TrackKind) => Promise<MediaStreamTrack>;
  readonly #changed: (state: MediaState) => void;
  #state: MediaState = { audio: true, video: true };
  #stream: MediaStream | undefined;
  /** The stream's tracks are on the peer connection (a new kind must be added, not only put in the stream). */
  #attached = false;
  #closed = false;
  /** Senders a toggle emptied, by kind, to take the new track when switched back on. */
  readonly #parked = new Map<TrackKind, RTCRtpSender>();
  /** Toggles run one after another, in call order. */
  #ops: Promise<void> = Promise.resolve();

  constructor(pc: RTCPeerConnectionType, getTrack: GetTrack | undefined, changed: (state: MediaState) => void) {
    this.#pc = pc;
    this.#getTrack = getTrack ?? userMediaTrack;
    this.#changed = changed;
  }

  get state(): MediaState {
    return { ...this.#state };
  }

  /** Take the stream given to start/accept/answer; kinds switched off before are stopped now. */
  adopt(stream: MediaStreamType | undefined): void {
    if (!stream || this.#closed) return;
    this.#stream = stream;
    for (const track of stream.getTracks()) {
      if (!this.#state[track.kind as TrackKind]) {
        track.stop();
        stream.removeTrack(track);
      }
    }
  }

  /** Put the adopted stream's tracks on the peer connection. */
  attach(): void {
    if (this.#attached || this.#closed) return;
    this.#attached = true;
    const stream = this.#stream;
    if (stream) for (const track of stream.getTracks()) this.#pc.addTrack(track, stream);
  }

  /** Switch a kind on or off. The state changes at once; the promise settles when the tracks have followed. */
  set(kind: TrackKind, on: boolean): Promise<void> {
    if (this.#closed || this.#state[kind] === on) return Promise.resolve();
    this.#update(kind, on);
    const op = this.#ops.then(() => (on ? this.#on(kind) : this.#off(kind)));
    this.#ops = op.catch(() => {});
    return op;
  }

  /** The call ended: no more peer connection work. The app stops its stream's tracks. */
  close(): void {
    this.#closed = true;
  }

  #update(kind: TrackKind, on: boolean): void {
    this.#state = { ...this.#state, [kind]: on };
    this.#changed(this.state);
  }

  async #off(kind: TrackKind): Promise<void> {
    const stream = this.#stream;
    for (const track of stream?.getTracks() ?? []) {
      if (track.kind !== kind) continue;
      track.stop();
      stream?.removeTrack(track);
    }
    if (this.#closed || !this.#attached) return;
    for (const sender of this.#pc.getSenders()) {
      if (sender.track?.kind !== kind) continue;
      this.#parked.set(kind, sender);
      await sender.replaceTrack(null);
    }
  }

  async #on(kind: TrackKind): Promise<void> {
    const stream = this.#stream;
    // No stream yet: the one given to start/accept brings the track.
    if (!stream || this.#closed) return;
    let track: MediaStreamTrack;
    try {
      track = await this.#getTrack(kind);
    } catch (error) {
      this.#update(kind, false);
      throw error;
    }
    if (this.#closed || !this.#state[kind]) {
      track.stop();
      return;
    }
    stream.addTrack(track);
    if (!this.#attached) return;
    const sender = this.#parked.get(kind);
    this.#parked.delete(kind);
    if (sender) await sender.replaceTrack(track);
    else this.#pc.addTrack(track, stream);
  }
}
