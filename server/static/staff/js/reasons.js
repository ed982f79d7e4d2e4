// Why the availability engine refused a time, in words for the host (the API's `reason` codes).

export const REASONS = {
  closed: "the restaurant is closed that day",
  outside_hours: "that time is outside the opening hours",
  full: "that slot is full",
  party_too_large: "the party is larger than the restaurant books directly (it becomes a request)",
  too_soon: "that is too soon (inside the lead time)",
  too_far: "that is too far ahead",
  in_the_past: "that time has passed",
};
export const reasonText = (reason) => REASONS[reason] ?? reason ?? "";

/** A 409 slot_unavailable as one sentence: the reason, then the nearest other times. */
export function refusalText(error, formatAlternative) {
  const others = (error.alternatives ?? []).map(formatAlternative);
  return `Not bookable: ${reasonText(error.reason)}.`
    + (others.length ? ` Nearest other times: ${others.join(", ")}.` : "");
}
