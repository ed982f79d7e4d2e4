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
  constructor(status, error) {
    super(error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = error?.code;
    this.fields = error?.fields ?? {};
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

async function request(method, path, body) {
  const headers = { ...authHeaders(), "X-Source": "staff", Accept: "application/json" };
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
  if (!response.ok) throw new ApiError(response.status, data.error);
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

export const changeBooking = (phone, changes) => request("PATCH", phonePath(phone), changes);
export const cancelBooking = (phone) => request("DELETE", phonePath(phone));
export const bookingHistory = (phone) => request("GET", `${phonePath(phone)}/history`);

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
