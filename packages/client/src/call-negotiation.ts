/**
 * The "perfect negotiation" half of a PeerCall
 * (https://w3c.github.io/webrtc-pc/#perfect-negotiation-example): either
 * side may send an offer at any time; on an offer collision the impolite
 * side ignores the incoming offer (and the candidates that follow it) and
 * the polite side rolls its own back. Apart from webrtc.ts so that the
 * call's states, media and signal routing read without the SDP exchange.
 */
import type { RTCPeerConnectionType } from './webrtc-types.js';

/** The SDP and ICE parts of a call signal's `data` (`offer`/`answer`: `description`, `candidate`: `candidate`). */
export interface NegotiationData {
  description?: RTCSessionDescriptionInit;
  candidate?: RTCIceCandidateInit | null;
}

/** What the negotiation needs of its call. */
export interface NegotiationHost {
  /** Our perfect-negotiation role, read at each collision. */
  polite(): boolean;
  /** Send one of our descriptions or candidates to the peer. */
  send(kind: 'offer' | 'answer' | 'candidate', data: NegotiationData): void;
  /** An answer, or an offer while we ring (both called at once): the peer is in the call. */
  peerAnswered(): void;
  /** Just before we answer an offer: add the local tracks held back for its transceivers. */
  beforeAnswer(): void;
  /** A step failed. */
  fail(error: unknown): void;
}

export class Negotiation {
  readonly #pc: RTCPeerConnectionType;
  readonly #host: NegotiationHost;
  #makingOffer = false;
  #ignoreOffer = false;

  constructor(pc: RTCPeerConnectionType, host: NegotiationHost) {
    this.#pc = pc;
    this.#host = host;
    pc.onnegotiationneeded = async () => {
      try {
        this.#makingOffer = true;
        // Without arguments, setLocalDescription creates the right description for the current state.
        await pc.setLocalDescription();
        const description = pc.localDescription;
        if (description) host.send(description.type === 'answer' ? 'answer' : 'offer', { description: plain(description) });
      } catch (error) {
        host.fail(error);
      } finally {
        this.#makingOffer = false;
      }
    };
    pc.onicecandidate = ({ candidate }) => {
      // A null candidate marks the end of gathering; peers do not need it.
      if (candidate) host.send('candidate', { candidate: candidate.toJSON() });
    };
    pc.oniceconnectionstatechange = () => {
      // A restart renegotiates fresh candidates (for example after a network change).
      if (pc.iceConnectionState === 'failed') pc.restartIce();
    };
  }

  /** Apply the peer's offer or answer; answer an offer unless it collided with ours and we are impolite. */
  async description(description: RTCSessionDescriptionInit): Promise<void> {
    const offerCollision = description.type === 'offer' && (this.#makingOffer || this.#pc.signalingState !== 'stable');
    this.#ignoreOffer = !this.#host.polite() && offerCollision;
    this.#host.peerAnswered();
    if (this.#ignoreOffer) return;
    // On a collision the polite side's setRemoteDescription rolls its own offer back implicitly.
    await this.#pc.setRemoteDescription(description);
    if (description.type !== 'offer') return;
    this.#host.beforeAnswer();
    await this.#pc.setLocalDescription();
    const local = this.#pc.localDescription;
    if (local) this.#host.send('answer', { description: plain(local) });
  }

  /** Apply one of the peer's ICE candidates. */
  async candidate(candidate: RTCIceCandidateInit): Promise<void> {
    try {
      await this.#pc.addIceCandidate(candidate);
    } catch (error) {
      // Candidates of an offer we ignored cannot apply; anything else is a real failure.
      if (!this.#ignoreOffer) throw error;
    }
  }

  /** The call ended: stop listening to the peer connection. */
  detach(): void {
    this.#pc.onnegotiationneeded = null;
    this.#pc.onicecandidate = null;
    this.#pc.oniceconnectionstatechange = null;
  }
}

function plain(description: RTCSessionDescription): RTCSessionDescriptionInit {
  return { type: description.type, sdp: description.sdp };
}
