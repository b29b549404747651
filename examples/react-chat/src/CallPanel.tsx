import { useCall, type CallEnd } from '@nerve-rt/react';
import { Video } from './Video';

/** A sentence for how the last call ended. */
function endText(ended: CallEnd): string {
  const who = ended.peer ?? 'The call';
  switch (ended.reason) {
    case 'local':
      return 'Call ended.';
    case 'remote':
      return `${who} hung up.`;
    case 'declined':
      return `${who} declined.`;
    case 'busy':
      return `${who} is in another call.`;
    case 'no_answer':
      return `${who} did not answer.`;
    case 'peer_offline':
      return `${who} is offline.`;
    case 'answered_elsewhere':
      return 'Answered on another device.';
    default:
      return 'The call failed.';
  }
}

/** `room`: 1:1 calls are timed by the server in it (billing); both people are in it. */
export function CallPanel({ room }: { room: string }) {
  const call = useCall({ room });

  if (call.invite) {
    return (
      <div className="incoming" data-testid="incoming-call">
        <b>{call.invite.from}</b> invites you to a group call
        <button data-testid="accept-call" onClick={() => void call.accept()}>
          Join
        </button>
        <button data-testid="decline-call" onClick={call.decline}>
          Decline
        </button>
      </div>
    );
  }
  if (call.incoming) {
    return (
      <div className="incoming" data-testid="incoming-call">
        <b>{call.peer}</b> is calling you
        <button data-testid="accept-call" onClick={() => void call.accept()}>
          Accept
        </button>
        <button data-testid="decline-call" onClick={call.decline}>
          Decline
        </button>
      </div>
    );
  }
  if (call.kind === 'none') {
    return call.ended ? (
      <p className="note" data-testid="call-ended">
        {endText(call.ended)}
      </p>
    ) : null;
  }

  return (
    <section className="call" data-testid="call-panel">
      <header>
        {call.kind === 'group' ? 'Group call' : `Call with ${call.peer ?? ''}`}{' '}
        <span className={`state state-${call.state}`} data-testid="call-state">
          {call.state}
        </span>
      </header>
      <div className="videos">
        {call.participants.map((participant) => (
          <figure key={participant.user} data-testid={`peer-${participant.user}`}>
            <Video stream={participant.stream} testId={`remote-video-${participant.user}`} />
            <figcaption>
              {participant.user} · <span data-testid={`peer-state-${participant.user}`}>{participant.state}</span>
              {!participant.media.audio && (
                <span className="flag" data-testid={`peer-muted-${participant.user}`}>
                  muted
                </span>
              )}
              {!participant.media.video && <span className="flag">camera off</span>}
            </figcaption>
          </figure>
        ))}
        <figure className="local">
          <Video stream={call.localStream} muted testId="local-video" />
          <figcaption>you</figcaption>
        </figure>
      </div>
      <div className="controls">
        <button data-testid="toggle-mic" onClick={() => void call.setMicrophone(!call.localMedia.audio)}>
          {call.localMedia.audio ? 'Mute' : 'Unmute'}
        </button>
        <button data-testid="toggle-camera" onClick={() => void call.setCamera(!call.localMedia.video)}>
          {call.localMedia.video ? 'Camera off' : 'Camera on'}
        </button>
        <button className="hangup" data-testid="hangup" onClick={call.hangup}>
          {call.state === 'ringing' ? 'Cancel' : 'Hang up'}
        </button>
      </div>
      {call.error && <p className="error">{call.error.message}</p>}
    </section>
  );
}
