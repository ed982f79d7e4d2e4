// The restaurant's clock: "now", "today" and instants shown in the restaurant's timezone, not
// the browser's (a host's phone set to another zone must still see the evening as it is).
// The zone comes from the profile (GET /api/restaurant), else from the feed's "ready" event.

let zone = null;

export function setZone(name) {
  if (!name) return;
  try {
    new Intl.DateTimeFormat("en", { timeZone: name });
    zone = name;
  } catch {
    // an unknown zone: keep the one we had
  }
}

export const timeZone = () => zone;

/** The wall clock where the restaurant is: {date: "YYYY-MM-DD", time: "HH:MM", weekday}. */
export function restaurantNow(at = new Date()) {
  const parts = Object.fromEntries(new Intl.DateTimeFormat("en-GB", {
    timeZone: zone ?? undefined, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", hourCycle: "h23", weekday: "short",
  }).formatToParts(at).map((part) => [part.type, part.value]));
  return {
    date: `${parts.year}-${parts.month}-${parts.day}`,
    time: `${parts.hour}:${parts.minute}`,
    weekday: parts.weekday.toLowerCase().slice(0, 3),
  };
}

/** An ISO instant ("2026-12-07T11:02:03+00:00") as the restaurant's local date and time. */
export function formatInstant(iso) {
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return String(iso ?? "");
  return at.toLocaleString(undefined, {
    timeZone: zone ?? undefined, dateStyle: "medium", timeStyle: "short",
  });
}

/** "2026-12-07" plus n days, as an ISO date (calendar arithmetic, no timezone involved). */
export function addDays(isoDate, days) {
  const [y, m, d] = isoDate.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d + days)).toISOString().slice(0, 10);
}

/** "mon".."sun" of an ISO date. */
export function weekdayOf(isoDate) {
  const [y, m, d] = isoDate.split("-").map(Number);
  return ["sun", "mon", "tue", "wed", "thu", "fri", "sat"][new Date(Date.UTC(y, m - 1, d)).getUTCDay()];
}

/** "HH:MM" <-> minutes after midnight. */
export const minutes = (hhmm) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));
export const hhmm = (total) =>
  `${String(Math.floor(total / 60)).padStart(2, "0")}:${String(total % 60).padStart(2, "0")}`;
