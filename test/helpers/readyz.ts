/** A node's `/readyz`: its status code and one lane's entry. */
export interface LaneReading {
  status: number;
  lane: { lane: string; driver: string; ok: boolean; detail?: string } | undefined;
}

/** Read `/readyz` of the node at `baseUrl` (http://host:port, or its ws://…/ws URL) and pick lane `name`. */
export async function readyLane(baseUrl: string, name: string): Promise<LaneReading> {
  const http = baseUrl.replace(/^ws:/, 'http:').replace(/\/ws$/, '');
  const response = await fetch(`${http}/readyz`);
  const body = (await response.json()) as { lanes?: Array<NonNullable<LaneReading['lane']>> };
  return { status: response.status, lane: body.lanes?.find((lane) => lane.lane === name) };
}
