import { useLayoutEffect, useRef, useState, type FormEvent } from 'react';
import { useRoom } from '@nerve-rt/react';

/** What this app publishes. The type is its word: another client may send anything, so `textOf` checks. */
interface ChatPayload {
  text: string;
}

function textOf(data: unknown): string {
  const text = (data as Partial<ChatPayload> | null)?.text;
  return typeof text === 'string' ? text : JSON.stringify(data);
}

export function Chat({ room }: { room: string }) {
  // messages: the SDK's folded list (edits, deletes, reactions applied); room.edit / delete / react change it.
  const { messages, publish, hasOlder, loadingOlder, loadOlder, status, error } = useRoom<ChatPayload>(room, { history: 20, pageSize: 20 });
  const [text, setText] = useState('');
  const [sendError, setSendError] = useState<string>();
  const log = useRef<HTMLOListElement>(null);
  const seen = useRef({ first: 0, last: 0, height: 0 });

  // A new newest message scrolls to the bottom; an older page keeps the view where it was.
  useLayoutEffect(() => {
    const element = log.current;
    if (!element) return;
    const first = messages[0]?.offset ?? 0;
    const last = messages[messages.length - 1]?.offset ?? 0;
    if (last !== seen.current.last) element.scrollTop = element.scrollHeight;
    else if (first !== seen.current.first) element.scrollTop += element.scrollHeight - seen.current.height;
    seen.current = { first, last, height: element.scrollHeight };
  }, [messages]);

  const send = (event: FormEvent) => {
    event.preventDefault();
    if (!text.trim()) return;
    setText('');
    setSendError(undefined);
    publish({ text }).catch((failure: Error) => setSendError(failure.message));
  };

  return (
    <section className="chat">
      {status === 'joining' && <p className="note">Joining…</p>}
      {error && <p className="error">{error.message}</p>}
      <ol className="log" ref={log} data-testid="chat-log">
        {hasOlder && (
          <li className="older">
            <button data-testid="load-older" disabled={loadingOlder} onClick={() => void loadOlder()}>
              {loadingOlder ? 'Loading…' : 'Load older messages'}
            </button>
          </li>
        )}
        {messages.map((message) => (
          <li key={`${message.epoch}:${message.offset}`} data-offset={message.offset}>
            <b>{message.from}</b> {message.deleted ? <i>message deleted</i> : textOf(message.data)}
            {message.editedAt !== undefined && !message.deleted && <small> (edited)</small>}
            {message.reactions?.map((reaction) => (
              <span key={reaction.emoji} className="reaction" title={reaction.users.join(', ')}>
                {reaction.emoji} {reaction.count}
              </span>
            ))}
          </li>
        ))}
      </ol>
      {sendError && <p className="error">Not sent: {sendError}</p>}
      <form className="composer" onSubmit={send}>
        <input data-testid="chat-input" value={text} onChange={(event) => setText(event.target.value)} placeholder="Say something" />
        <button data-testid="chat-send">Send</button>
      </form>
    </section>
  );
}
