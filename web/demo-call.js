// nerve demo page: the call panel. One call at a time through the SDK's PeerCall:
// ringing (outgoing and incoming), accept / decline / busy, mute and camera
// toggles, and the peer's microphone and camera state. demo.js owns the page and
// feeds this module the client's signals. Sets `window.NerveDemoCall`.
'use strict';

(() => {
  const { PeerCall } = window.Nerve;
  const $ = (id) => document.getElementById(id);

  /** What the badge says per call state (`call.callState`). */
  const STATE_TEXT = {
    new: 'starting',
    ringing: 'ringing…',
    accepted: 'accepted',
    connecting: 'connecting',
    connected: 'connected',
    reconnecting: 'reconnecting',
    declined: 'declined',
    busy: 'busy',
    ended: 'ended',
  };

  /**
   * @param {object} deps
   * @param {() => any} deps.getClient the connected NerveClient, if any
   * @param {(text: string) => void} deps.systemLine a line in the chat log
   * @param {(error: unknown, ctx?: object) => string} deps.describe error → sentence
   * @param {() => void} deps.changed the call started or ended (re-render the member list)
   */
  function create({ getClient, systemLine, describe, changed }) {
    /** @type {InstanceType<typeof PeerCall> | undefined} */
    let call;
    /** @type {MediaStream | undefined} */
    let localStream;

    const active = () => call !== undefined && !call.ended;

    async function start(peer) {
      const client = getClient();
      if (!client || active()) return;
      try {
        const stream = await getLocalStream();
        call = createCall(client, peer);
        call.start(stream);
        showPanel();
      } catch (error) {
        systemLine(`Could not start the call: ${describe(error, { action: 'call' })}`);
        end();
      }
    }

    /** Every signal of the client. The current call's peer is the PeerCall's business. */
    function onSignal(signal) {
      const client = getClient();
      if (!client || (active() && call.peer === signal.from)) return;
      if (signal.kind !== 'offer') return;
      if (active()) {
        // One call at a time: the caller sees "busy".
        void PeerCall.reject(client, signal, 'busy');
        return;
      }
      call = createCall(client, signal.from, signal);
      $('incoming-from').textContent = signal.from;
      $('incoming').hidden = false;
    }

    $('accept-call').addEventListener('click', async () => {
      const ringing = call;
      $('incoming').hidden = true;
      if (!ringing || ringing.ended || !ringing.incoming) return;
      try {
        const stream = await getLocalStream();
        if (ringing.ended) return;
        showPanel();
        await ringing.accept(stream);
      } catch (error) {
        systemLine(`Could not answer: ${describe(error, { action: 'call' })}`);
        if (call === ringing) end();
      }
    });

    $('decline-call').addEventListener('click', () => {
      $('incoming').hidden = true;
      if (active() && call.incoming && call.callState === 'ringing') call.decline();
    });

    $('hangup').addEventListener('click', () => end());

    $('toggle-mic').addEventListener('click', () => {
      if (!active()) return;
      call.setMicrophone(!call.localMedia.audio).catch((error) => systemLine(`Microphone: ${describe(error)}`));
    });

    $('toggle-camera').addEventListener('click', () => {
      if (!active()) return;
      call.setCamera(!call.localMedia.video).catch((error) => systemLine(`Camera: ${describe(error)}`));
    });

    function createCall(client, peer, incoming) {
      const created = new PeerCall(incoming ? { client, peer, incoming } : { client, peer });
      $('call-peer').textContent = peer;
      $('remote-label').textContent = peer;
      renderState(created);
      renderLocalMedia(created.localMedia);
      renderRemoteMedia(created.remoteMedia);
      created.on('call_state', () => {
        if (call === created) renderState(created);
      });
      created.on('track', () => {
        if (call === created) $('remote-video').srcObject = created.remoteStream ?? null;
      });
      created.on('local_media', (media) => {
        if (call === created) renderLocalMedia(media);
      });
      created.on('remote_media', (media) => {
        if (call === created) renderRemoteMedia(media);
      });
      created.on('error', (error) => systemLine(`Call: ${describe(error, { action: 'call' })}`));
      let lastState = created.callState;
      created.on('call_state', ({ previous }) => (lastState = previous));
      created.on('ended', ({ reason }) => {
        systemLine(endText(created, reason, lastState));
        if (call === created) end();
      });
      queueMicrotask(changed);
      return created;
    }

    function endText(ended, reason, before) {
      const peer = ended.peer;
      const rang = before === 'ringing';
      switch (reason) {
        case 'local':
          if (ended.callState === 'declined') return `You declined the call from ${peer}.`;
          if (rang) return ended.incoming ? `Missed call from ${peer}.` : 'You cancelled the call.';
          return 'You hung up.';
        case 'remote':
          return rang && ended.incoming ? `Missed call from ${peer}.` : `${peer} hung up.`;
        case 'declined':
          return `${peer} declined the call.`;
        case 'busy':
          return `${peer} is in another call.`;
        case 'no_answer':
          return ended.incoming ? `Missed call from ${peer}.` : `${peer} did not answer.`;
        case 'answered_elsewhere':
          return `You answered ${peer} on another device.`;
        case 'peer_offline':
          return `${peer} is offline.`;
        default:
          return 'The call failed.';
      }
    }

    /** Hang up (or stop ringing) and put the panel away. */
    function end() {
      if (active()) {
        if (call.incoming && call.callState === 'ringing') call.decline();
        else call.hangup();
      }
      for (const track of localStream?.getTracks() ?? []) track.stop();
      localStream = undefined;
      $('local-video').srcObject = null;
      $('remote-video').srcObject = null;
      $('call-panel').hidden = true;
      $('room-view').classList.remove('in-call');
      $('incoming').hidden = true;
      changed();
    }

    /** The peer left the room: a call with them is over. */
    function memberLeft(user) {
      if (active() && call.peer === user) {
        call.close();
        end();
      }
    }

    function showPanel() {
      const panel = $('call-panel');
      panel.hidden = false;
      $('room-view').classList.add('in-call');
      // On a phone the panel is the first thing in the room view: bring it into sight.
      panel.scrollIntoView({ block: 'nearest' });
    }

    function renderState(current) {
      const badge = $('call-state');
      const state = current.callState;
      badge.dataset.state = state;
      badge.textContent = state === 'ringing' && current.incoming ? 'incoming' : (STATE_TEXT[state] ?? state);
      $('hangup').textContent = state === 'ringing' && !current.incoming ? 'Cancel' : 'Hang up';
    }

    function renderLocalMedia(media) {
      const mic = $('toggle-mic');
      mic.textContent = media.audio ? 'Mute' : 'Unmute';
      mic.setAttribute('aria-pressed', String(!media.audio));
      const camera = $('toggle-camera');
      camera.textContent = media.video ? 'Camera off' : 'Camera on';
      camera.setAttribute('aria-pressed', String(!media.video));
    }

    function renderRemoteMedia(media) {
      $('remote-muted').hidden = media.audio;
      $('remote-camera-off').hidden = media.video;
      document.querySelector('[data-testid="remote-camera-cover"]').hidden = media.video;
    }

    async function getLocalStream() {
      if (!localStream) {
        localStream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
        $('local-video').srcObject = localStream;
      }
      return localStream;
    }

    return {
      start,
      onSignal,
      end,
      memberLeft,
      get call() {
        return call;
      },
      get busy() {
        return active();
      },
    };
  }

  window.NerveDemoCall = { create };
})();
