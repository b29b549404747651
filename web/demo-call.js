// nerve demo page: the call panel. One call at a time: a 1:1 call through the SDK's
// PeerCall (ringing both ways, accept / decline / busy) or a group call of up to 6
// through RoomCall (a tile per person); mute and camera toggles, and each peer's
// microphone and camera state. demo.js owns the page and feeds this module the
// client's signals. Sets `window.NerveDemoCall`.
'use strict';

(() => {
  const { PeerCall, RoomCall } = window.Nerve;
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
   * @param {() => string} deps.getRoom the room the page is in
   * @param {() => void} deps.changed the call started, changed state or ended (re-render the member list, update the presence status)
   */
  function create({ getClient, getRoom, systemLine, describe, changed }) {
    /** @type {InstanceType<typeof PeerCall> | undefined} */
    let call;
    /** @type {InstanceType<typeof RoomCall> | undefined} */
    let group;
    /** A group call invitation waiting for Accept / Decline. */
    let invite;
    /** @type {MediaStream | undefined} */
    let localStream;

    const active = () => call !== undefined && !call.ended;
    const groupActive = () => group !== undefined && !group.ended;
    const busy = () => active() || groupActive() || invite !== undefined;

    async function start(peer) {
      const client = getClient();
      if (!client || busy()) return;
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

    /** Every signal of the client. The current call's peer is the PeerCall's business; group calls are RoomCall's. */
    function onSignal(signal) {
      const client = getClient();
      if (!client) return;
      if (RoomCall.isGroupSignal(signal)) {
        const found = RoomCall.invitation(signal);
        if (found && !busy()) {
          invite = found;
          $('incoming-from').textContent = found.from;
          $('incoming-what').textContent = 'invites you to a group call';
          $('incoming').hidden = false;
        }
        return;
      }
      if (active() && call.peer === signal.from) return;
      if (signal.kind !== 'offer') return;
      if (busy()) {
        // One call at a time: the caller sees "busy".
        void PeerCall.reject(client, signal, 'busy');
        return;
      }
      call = createCall(client, signal.from, signal);
      $('incoming-from').textContent = signal.from;
      $('incoming-what').textContent = 'is calling you';
      $('incoming').hidden = false;
    }

    $('accept-call').addEventListener('click', async () => {
      $('incoming').hidden = true;
      if (invite) {
        const accepted = invite;
        invite = undefined;
        await startGroup([], accepted);
        return;
      }
      const ringing = call;
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
      invite = undefined;
      if (active() && call.incoming && call.callState === 'ringing') call.decline();
    });

    $('hangup').addEventListener('click', () => end());

    // The toggles work the same on a PeerCall and a RoomCall.
    const current = () => (groupActive() ? group : active() ? call : undefined);

    $('toggle-mic').addEventListener('click', () => {
      const target = current();
      target?.setMicrophone(!target.localMedia.audio).catch((error) => systemLine(`Microphone: ${describe(error)}`));
    });

    $('toggle-camera').addEventListener('click', () => {
      const target = current();
      target?.setCamera(!target.localMedia.video).catch((error) => systemLine(`Camera: ${describe(error)}`));
    });

    /** Start a group call inviting `users`, or join the one of `accepted` (an invitation). */
    async function startGroup(users, accepted) {
      const client = getClient();
      if (!client || active() || groupActive()) return;
      try {
        const stream = await getLocalStream();
        const room = accepted?.room ?? getRoom();
        group = accepted ? new RoomCall({ client, room, stream, callId: accepted.callId }) : new RoomCall({ client, room, stream });
        wireGroup(group);
        if (accepted) group.join(accepted.members);
        else group.invite(users.slice(0, 5));
        showPanel();
        changed();
      } catch (error) {
        systemLine(`Could not start the group call: ${describe(error, { action: 'call' })}`);
        end();
      }
    }

    function wireGroup(g) {
      $('call-title').textContent = 'Group call';
      $('hangup').textContent = 'Leave call';
      $('videos').classList.add('grid');
      $('remote-figure').hidden = true;
      renderLocalMedia(g.localMedia);
      renderGroupState(g);
      g.on('peer_joined', ({ user }) => {
        tile(user);
        renderGroupState(g);
      });
      g.on('peer_state', ({ user, state }) => {
        tile(user).querySelector('.tile-state').textContent = STATE_TEXT[state] ?? state;
        renderGroupState(g);
      });
      g.on('peer_track', ({ user, stream }) => {
        tile(user).querySelector('video').srcObject = stream;
      });
      g.on('peer_media', ({ user, media }) => {
        const figure = tile(user);
        figure.querySelector('.muted').hidden = media.audio;
        figure.querySelector('.camera-off').hidden = media.video;
        figure.querySelector('.camera-off-cover').hidden = media.video;
      });
      g.on('peer_left', ({ user, reason }) => {
        document.querySelector(`[data-peer="${CSS.escape(user)}"]`)?.remove();
        if (reason !== 'local') systemLine(reason === 'busy' ? `${user}'s group call is full.` : `${user} left the group call.`);
        renderGroupState(g);
      });
      g.on('local_media', (media) => renderLocalMedia(media));
      g.on('error', (error) => systemLine(`Group call: ${describe(error, { action: 'call' })}`));
    }

    /** The tile of one participant (made on first use). */
    function tile(user) {
      const found = document.querySelector(`[data-peer="${CSS.escape(user)}"]`);
      if (found) return found;
      const figure = document.createElement('figure');
      figure.className = 'tile';
      figure.dataset.peer = user;
      figure.dataset.testid = `peer-${user}`;
      const video = document.createElement('video');
      video.autoplay = true;
      video.playsInline = true;
      const cover = document.createElement('div');
      cover.className = 'camera-off-cover';
      cover.hidden = true;
      const caption = document.createElement('figcaption');
      const name = document.createElement('span');
      name.textContent = user;
      const state = document.createElement('span');
      state.className = 'tile-state';
      const muted = flag('muted', `peer-muted-${user}`);
      const cameraOff = flag('camera off', `peer-camera-off-${user}`);
      cameraOff.classList.add('camera-off');
      caption.append(name, ' ', state, muted, cameraOff);
      figure.append(video, cover, caption);
      $('videos').insertBefore(figure, document.querySelector('.videos .local'));
      return figure;
    }

    function flag(text, testid) {
      const span = document.createElement('span');
      span.className = `flag ${text === 'muted' ? 'muted' : ''}`;
      span.dataset.testid = testid;
      span.textContent = text;
      span.hidden = true;
      return span;
    }

    function renderGroupState(g) {
      const pairs = [...g.peers.values()];
      const connected = pairs.filter((pair) => pair.callState === 'connected').length;
      const badge = $('call-state');
      badge.dataset.state = pairs.length > 0 && connected === pairs.length ? 'connected' : 'connecting';
      badge.textContent = pairs.length === 0 ? 'waiting for others' : `${connected} of ${pairs.length} connected`;
      $('call-peer').textContent = '';
    }

    function createCall(client, peer, incoming) {
      // `room`: both are in the page's room, which the server bills the call to (docs/sdk.md, "Calls timed by the server").
      const room = getRoom();
      const created = new PeerCall(incoming ? { client, peer, incoming, room } : { client, peer, room });
      $('call-peer').textContent = peer;
      $('remote-label').textContent = peer;
      renderState(created);
      renderLocalMedia(created.localMedia);
      renderRemoteMedia(created.remoteMedia);
      created.on('call_state', () => {
        if (call !== created) return;
        renderState(created);
        // Accepting (or the peer answering) puts this page "in a call" (demo.js sets its presence).
        changed();
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
      if (groupActive()) group.leave();
      group = undefined;
      for (const figure of document.querySelectorAll('.videos .tile')) figure.remove();
      $('videos').classList.remove('grid');
      $('remote-figure').hidden = false;
      $('call-title').textContent = 'Call with';
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
      if (groupActive()) group.peers.get(user)?.close();
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
      startGroup,
      onSignal,
      end,
      memberLeft,
      get call() {
        return call;
      },
      get group() {
        return group;
      },
      get busy() {
        return busy();
      },
      /** In a call, not only ringing at one (an incoming call not answered yet is not). */
      get inCall() {
        return groupActive() || (active() && !(call.incoming && call.callState === 'ringing'));
      },
    };
  }

  window.NerveDemoCall = { create };
})();
