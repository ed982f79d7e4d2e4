// The staff API over fetch: the staff token (when the server wants one) goes in the
// Authorization header, kept in sessionStorage for this tab only, never in a URL.

const TOKEN_KEY = "staffToken";

export class StaffAuthError extends Error {
  /** 401: a token is needed (or was wrong); 403: the server is closed to this client. */
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export class ApiError extends Error {
  constructor(status, error, body) {
    const detail = typeof error === "object" && error !== null ? error : {};
    super(detail.message || (typeof error === "string" ? error : `HTTP ${status}`));
    this.status = status;
    this.code = detail.code ?? (typeof error === "string" ? error : undefined);
    this.fields = detail.fields ?? {};
    // 409 slot_unavailable: why and what else; 412 booking_changed: the booking as it is now.
    this.reason = detail.reason ?? body?.reason ?? null;
    this.alternatives = detail.alternatives ?? body?.alternatives ?? [];
    this.current = detail.current ?? body?.current ?? null;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Headers every staff request carries. */
export function authHeaders() {
  const value = token();
  return value ? { Authorization: `Bearer ${value}` } : {};
}

async function request(method, path, body, extraHeaders = {}) {
  const headers = {
    ...authHeaders(), "X-Source": "staff", Accept: "application/json", ...extraHeaders,
  };
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const data = await response.json().catch(() => ({}));
  if (response.status === 401 || response.status === 403) {
    throw new StaffAuthError(response.status, data.error?.message ?? "not allowed");
  }
  if (!response.ok) throw new ApiError(response.status, data.error, data);
  const etag = response.headers.get("ETag");
  if (etag && data && typeof data === "object" && !Array.isArray(data)) data.etag = etag;
  return data;
}

const phonePath = (phone) => `/api/reservations/${encodeURIComponent(phone)}`;

/** Every booking of a day (all pages), by time. */
export async function listDay(date) {
  const items = [];
  let cursor = null;
  do {
    const query = new URLSearchParams({ date, status: "all", limit: "200" });
    if (cursor) query.set("cursor", cursor);
    const page = await request("GET", `/api/reservations?${query}`);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}

/** Every booking from today up to and including `last` (an ISO date) with `status`. */
export async function listRange(last, status = "all") {
  const items = [];
  let cursor = null;
  do {
    const query = new URLSearchParams({ status, limit: "200" });
    if (cursor) query.set("cursor", cursor);
    const page = await request("GET", `/api/reservations?${query}`);
    const kept = page.items.filter((item) => item.reservation_date <= last);
    items.push(...kept);
    cursor = kept.length === page.items.length ? page.next_cursor : null;
  } while (cursor);
  return items;
}

/** If-Match with the version the page showed: a booking changed meanwhile is a 412. */
const ifMatch = (etag) => (etag ? { "If-Match": etag } : {});
export const changeBooking = (phone, changes, etag) =>
  request("PATCH", phonePath(phone), changes, ifMatch(etag));
export const cancelBooking = (phone, etag) =>
  request("DELETE", phonePath(phone), undefined, ifMatch(etag));
export const bookingHistory = (phone) => request("GET", `${phonePath(phone)}/history`);
/** A staff booking; `override` books past the availability rules (recorded in the history). */
export const createBooking = (booking) => request("POST", "/api/reservations", booking);

/** Messages sent to the guest for a date; null when this server has no messages yet (404). */
export async function guestMessages(phone, date) {
  try {
    return await request("GET", `/api/messages?${new URLSearchParams({ phone, date })}`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return null;
    throw error;
  }
}

// --- the restaurant's profile and availability --------------------------------------------

/** The whole profile (staff see every field); null when this server has none (404). */
export async function restaurant() {
  try {
    return await request("GET", "/api/restaurant");
  } catch (error) {
    if (error instanceof ApiError && (error.status === 404 || error.status === 405)) return null;
    throw error;
  }
}
export const saveRestaurant = (profile) => request("PUT", "/api/restaurant", profile);
export const conflicts = () => request("GET", "/api/restaurant/conflicts");
export const availability = (date, partySize) => request(
  "GET", `/api/availability?${new URLSearchParams({ date, party_size: String(partySize) })}`,
);

/** Every call of a day (all pages), newest first. */
export async function listCalls(date) {
  const items = [];
  let cursor = null;
  do {
    const query = new URLSearchParams({ date, limit: "200" });
    if (cursor) query.set("cursor", cursor);
    const page = await request("GET", `/api/calls?${query}`);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}

export const getCall = (id) => request("GET", `/api/calls/${encodeURIComponent(id)}`);

/** Today's spending against MODEL_DAILY_BUDGET_USD (budget_usd null when there is no cap). */
export const budget = () => request("GET", "/api/budget");
