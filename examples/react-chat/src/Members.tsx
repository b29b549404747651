import { useEffect } from 'react';
import { useCall, useNerve, usePresence } from '@nerve-rt/react';

export function Members({ room }: { room: string }) {
  const { client, user } = useNerve();
  const { members, count, status } = usePresence(room);
  const call = useCall({ room });
  const others = members.map((member) => member.user).filter((name) => name !== user);
  const idle = call.kind === 'none' && !call.invite;
  const inCall = call.kind !== 'none';

  // Presence state: the others see "in a call" by this name (the server keeps it across rejoins).
  // Once joined: a room switched to is joined after this renders, and setPresence needs the join.
  useEffect(() => {
    if (status !== 'joined') return;
    client
      .room(room)
      .setPresence({ inCall })
      .catch(() => {});
  }, [client, room, inCall, status]);

  return (
    <aside className="members">
      <h2>In the room ({count})</h2>
      <ul data-testid="members">
        {members.map((member) => (
          <li key={member.user} data-testid={`member-${member.user}`}>
            {member.user}
            {member.state?.inCall === true && (
              <span className="flag" data-testid={`in-call-${member.user}`}>
                in a call
              </span>
            )}
            {member.user === user ? (
              ' (you)'
            ) : (
              <button data-testid={`call-${member.user}`} disabled={!idle} onClick={() => void call.call(member.user)}>
                Call
              </button>
            )}
          </li>
        ))}
      </ul>
      {others.length > 1 && (
        <button data-testid="group-call" disabled={!idle} onClick={() => void call.startGroup(room, others.slice(0, 5))}>
          Group call
        </button>
      )}
    </aside>
  );
}
