// Drives a Fyr homeserver with matrix-js-sdk, the SDK inside Element Web and Desktop: two users
// on classic /sync (startClient), then more devices on simplified sliding sync (MSC4186,
// SlidingSync + SlidingSyncSdk), with the SDK's Rust crypto (WASM) for the encrypted rooms.
//
//   node test.mjs http://127.0.0.1:8008
//
// The server needs open registration (m.login.dummy) and no rate limits. Each step prints
// "ok <step> (<ms>)"; the first failure prints the error and exits 1. FYR_JSCLIENT_DEBUG=1
// shows the SDK's own logs.

import * as sdk from "matrix-js-sdk";
import {
    MSC3575_STATE_KEY_LAZY,
    MSC3575_STATE_KEY_ME,
    MSC3575_WILDCARD,
    SlidingSync,
    SlidingSyncEvent,
    SlidingSyncState,
} from "matrix-js-sdk/lib/sliding-sync.js";

const say = (line) => process.stdout.write(line + "\n");
const base = process.argv[2];
if (!base) {
    console.error("usage: node test.mjs <homeserver base URL>");
    process.exit(2);
}
const major = Number(process.versions.node.split(".")[0]);
if (major < 22) {
    // matrix-js-sdk asks for Node 22; Node 20 lacks only Promise.withResolvers of what it uses.
    say(`note: Node ${process.versions.node} is older than the SDK's Node 22; adding Promise.withResolvers`);
    Promise.withResolvers ??= function () {
        let resolve, reject;
        const promise = new Promise((res, rej) => ((resolve = res), (reject = rej)));
        return { promise, resolve, reject };
    };
}
// The SDK and its Rust crypto log through console; only FYR_JSCLIENT_DEBUG shows that.
if (!process.env.FYR_JSCLIENT_DEBUG) {
    for (const m of ["log", "info", "debug", "warn", "error", "trace"]) console[m] = () => {};
}
// FYR_JSCLIENT_TRACE=1 prints every sliding sync request and response.
const trace = process.env.FYR_JSCLIENT_TRACE;
// Per client: the first pos it was given, and whether its next request should use it again.
const firstPos = {};
const reuseFirstPos = {};

/** The fetch of one client: traces sliding sync, and can send a stale pos once. */
function fetchFor(name) {
    return async (url, init) => {
        if (String(url).includes("simplified_msc3575")) {
            const u = new URL(url);
            const pos = u.searchParams.get("pos");
            if (pos) firstPos[name] ??= pos;
            if (pos && reuseFirstPos[name]) {
                reuseFirstPos[name] = false;
                u.searchParams.set("pos", firstPos[name]);
                url = u.toString();
            }
        }
        const resp = await fetch(url, init);
        if (trace && String(url).includes("simplified_msc3575")) {
            const body = await resp.clone().text();
            say(`>>> ${name} ${url}\n${init?.body}\n<<< ${resp.status}\n${body}`);
        }
        return resp;
    };
}

const { EventType, MsgType, Preset, ReceiptType, RelationType } = sdk;
const run = Date.now().toString(36); // user names unique per run, so a reused server works
const password = "correct horse battery staple";
const clients = [];
const slidingErrors = [];

// ---------------------------------------------------------------- helpers

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls cond until it returns something truthy, or fails after ms. */
async function waitFor(what, cond, ms = 20000) {
    const deadline = Date.now() + ms;
    for (;;) {
        const v = await cond();
        if (v) return v;
        if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
        await sleep(25);
    }
}

function check(ok, msg) {
    if (!ok) throw new Error(msg);
}

let failed = false;
const timings = [];
async function step(name, fn) {
    if (failed) return;
    const t0 = Date.now();
    try {
        await fn();
        const ms = Date.now() - t0;
        timings.push([name, ms]);
        say(`ok   ${name} (${ms} ms)`);
    } catch (err) {
        failed = true;
        say(`FAIL ${name} (${Date.now() - t0} ms)`);
        say(err?.stack ?? err);
        if (err?.data) say(`server said: ${JSON.stringify(err.data)}`);
    }
}

/** Registers through the user-interactive flow: a first request for the session, then m.login.dummy. */
async function register(localpart) {
    const c = sdk.createClient({ baseUrl: base });
    let session;
    try {
        await c.registerRequest({ username: localpart, password, inhibit_login: true });
        throw new Error("register without auth succeeded; expected a 401 with flows");
    } catch (err) {
        check(err.httpStatus === 401, `register ${localpart}: ${err}`);
        const flows = err.data.flows.map((f) => f.stages.join(","));
        check(flows.includes("m.login.dummy"), `register flows ${JSON.stringify(flows)} lack m.login.dummy`);
        session = err.data.session;
    }
    const r = await c.registerRequest({
        username: localpart,
        password,
        inhibit_login: true,
        auth: { type: "m.login.dummy", session },
    });
    return r.user_id;
}

/** Logs in with a password on a new device and returns the login response. */
async function passwordLogin(user, device) {
    const c = sdk.createClient({ baseUrl: base });
    const flows = await c.loginFlows();
    check(
        flows.flows.some((f) => f.type === "m.login.password"),
        `login flows ${JSON.stringify(flows)} lack m.login.password`,
    );
    return c.loginRequest({
        type: "m.login.password",
        identifier: { type: "m.id.user", user },
        password,
        initial_device_display_name: device,
        refresh_token: true,
    });
}

/** A client for a login, with the Rust crypto set up (in memory, as IndexedDB is absent in Node). */
async function newClient(login, name) {
    const c = sdk.createClient({
        baseUrl: base,
        fetchFn: fetchFor(name),
        userId: login.user_id,
        deviceId: login.device_id,
        accessToken: login.access_token,
        refreshToken: login.refresh_token,
        tokenRefreshFunction: login.refresh_token
            ? async (rt) => {
                  const r = await sdk.createClient({ baseUrl: base }).refreshToken(rt);
                  return {
                      accessToken: r.access_token,
                      refreshToken: r.refresh_token ?? rt,
                      expiry: r.expires_in_ms ? new Date(Date.now() + r.expires_in_ms) : undefined,
                  };
              }
            : undefined,
    });
    c.fyrName = name;
    await c.initRustCrypto({ useIndexedDB: false });
    clients.push(c);
    return c;
}

async function waitSynced(c) {
    await waitFor(`${c.fyrName} to finish its first sync`, () =>
        ["PREPARED", "SYNCING"].includes(c.getSyncState()),
    );
}

/** The m.room.message with this body in the room's live timeline, decrypted if need be. */
async function findMessage(c, roomId, body) {
    const room = c.getRoom(roomId);
    if (!room) return null;
    for (const ev of room.getLiveTimeline().getEvents()) {
        if (ev.isEncrypted() && !ev.getClearContent()) await c.decryptEventIfNeeded(ev);
        // getContent() shows the newest edit; match the original too
        if (ev.getType() === EventType.RoomMessage && [ev.getContent().body, ev.getOriginalContent().body].includes(body)) return ev;
    }
    return null;
}

async function expectMessage(c, roomId, body, sender) {
    const ev = await waitFor(`${c.fyrName} to receive "${body}"`, () => findMessage(c, roomId, body));
    check(ev.getSender() === sender, `"${body}" came from ${ev.getSender()}, want ${sender}`);
    return ev;
}

const membership = (c, roomId) => c.getRoom(roomId)?.getMyMembership();
const memberOf = (c, roomId, user) => c.getRoom(roomId)?.getMember(user)?.membership;

/** What Element Web asks of each room in its room list, and of a room it shows. */
const LIST_REQUIRED_STATE = [
    [EventType.RoomJoinRules, ""],
    [EventType.RoomAvatar, ""],
    [EventType.RoomTombstone, ""],
    [EventType.RoomEncryption, ""],
    [EventType.RoomCreate, ""],
    [EventType.RoomName, ""],
    [EventType.RoomMember, MSC3575_STATE_KEY_ME],
    [EventType.RoomMember, MSC3575_STATE_KEY_LAZY],
];
const ROOM_SUBSCRIPTION = { timeline_limit: 50, required_state: [[MSC3575_WILDCARD, MSC3575_WILDCARD]] };

/** A client on simplified sliding sync with one room list, as Element Web sets it up. */
async function slidingClient(login, name) {
    const c = await newClient(login, name);
    const ss = new SlidingSync(
        base,
        new Map([
            [
                "room_list",
                {
                    ranges: [[0, 19]],
                    timeline_limit: 1,
                    required_state: LIST_REQUIRED_STATE,
                    filters: {},
                },
            ],
        ]),
        ROOM_SUBSCRIPTION,
        c,
        10000,
    );
    // SlidingSync swallows a 400 (it starts the connection over), so collect errors here.
    ss.on(SlidingSyncEvent.Lifecycle, (state, _resp, err) => {
        if (state === SlidingSyncState.RequestFinished && err && err.name !== "AbortError") {
            slidingErrors.push(`${name}: ${err.httpStatus ?? ""} ${err.errcode ?? ""} ${err.message}`);
        }
    });
    c.fyrSliding = ss;
    await c.startClient({ slidingSync: ss });
    return c;
}

function noSlidingErrors() {
    check(slidingErrors.length === 0, `sliding sync requests failed: ${slidingErrors.join("; ")}`);
}

// ---------------------------------------------------------------- steps

const aliceLocal = `alice-${run}`;
const bobLocal = `bob-${run}`;
let aliceId, bobId, alice, bob, alice2, bob2, plainRoom, secretRoom, inviteRoom, aliceLogin, bobLogin;

await step("versions advertise simplified sliding sync", async () => {
    const v = await sdk.createClient({ baseUrl: base }).getVersions();
    check(v.unstable_features?.["org.matrix.simplified_msc3575"] === true, `unstable_features: ${JSON.stringify(v.unstable_features)}`);
    check(v.versions.includes("v1.11"), `versions: ${v.versions}`);
});

await step("register two users (m.login.dummy)", async () => {
    aliceId = await register(aliceLocal);
    bobId = await register(bobLocal);
});

await step("log in with a password", async () => {
    aliceLogin = await passwordLogin(aliceLocal, "js-sdk sync v2");
    bobLogin = await passwordLogin(bobLocal, "js-sdk sync v2");
    check(aliceLogin.user_id === aliceId, `login user_id ${aliceLogin.user_id}, want ${aliceId}`);
    check(aliceLogin.device_id && aliceLogin.access_token, "login lacks device_id or access_token");
    say(`     refresh token issued: ${aliceLogin.refresh_token ? "yes" : "no (the server does not do refresh tokens)"}`);
});

if (aliceLogin?.refresh_token) {
    await step("refresh the access token", async () => {
        const login = await passwordLogin(aliceLocal, "js-sdk refresh");
        const anon = sdk.createClient({ baseUrl: base });
        const r = await anon.refreshToken(login.refresh_token);
        check(r.access_token && r.access_token !== login.access_token, "refresh gave no new access token");
        const c = sdk.createClient({ baseUrl: base, accessToken: r.access_token });
        const who = await c.whoami();
        check(who.user_id === aliceId, `whoami after refresh: ${who.user_id}`);
    });
}

await step("start two clients on /sync v2 with Rust crypto", async () => {
    alice = await newClient(aliceLogin, "alice");
    bob = await newClient(bobLogin, "bob");
    // As Element Web starts its client: lazy-loaded members, threads on.
    await alice.startClient({ initialSyncLimit: 20, lazyLoadMembers: true, threadSupport: true });
    await bob.startClient({ initialSyncLimit: 20, lazyLoadMembers: true, threadSupport: true });
    await waitSynced(alice);
    await waitSynced(bob);
});

await step("create a room, invite, join", async () => {
    plainRoom = (await alice.createRoom({ name: "js-sdk plain", preset: Preset.PrivateChat, invite: [bobId] })).room_id;
    await waitFor("bob to see the invite", () => membership(bob, plainRoom) === "invite");
    await bob.joinRoom(plainRoom);
    await waitFor("alice to see bob join", () => memberOf(alice, plainRoom, bobId) === "join");
    check(bob.getRoom(plainRoom).name === "js-sdk plain", `bob sees room name ${bob.getRoom(plainRoom).name}`);
});

await step("send and receive messages both ways", async () => {
    const sent = await alice.sendMessage(plainRoom, { msgtype: MsgType.Text, body: "hello bob" });
    const got = await expectMessage(bob, plainRoom, "hello bob", aliceId);
    check(got.getId() === sent.event_id, `bob got ${got.getId()}, alice sent ${sent.event_id}`);
    await bob.sendMessage(plainRoom, { msgtype: MsgType.Text, body: "hello alice" });
    await expectMessage(alice, plainRoom, "hello alice", bobId);
});

await step("typing notifications", async () => {
    await alice.sendTyping(plainRoom, true, 20000);
    await waitFor("bob to see alice typing", () => bob.getRoom(plainRoom).getMember(aliceId)?.typing === true);
    await alice.sendTyping(plainRoom, false, 0);
    await waitFor("bob to see alice stop typing", () => bob.getRoom(plainRoom).getMember(aliceId)?.typing === false);
});

await step("read receipts", async () => {
    const ev = await findMessage(bob, plainRoom, "hello bob");
    await bob.sendReadReceipt(ev, ReceiptType.Read);
    await waitFor("alice to see bob's receipt", () => alice.getRoom(plainRoom).getEventReadUpTo(bobId, true) === ev.getId());
    const receipt = alice.getRoom(plainRoom).getReadReceiptForUserId(bobId, true, ReceiptType.Read);
    check(receipt?.data?.ts > 0, `receipt without ts: ${JSON.stringify(receipt)}`);
});

await step("reactions, edits, threads and redactions", async () => {
    const root = await findMessage(bob, plainRoom, "hello bob");
    await bob.sendEvent(plainRoom, EventType.Reaction, {
        "m.relates_to": { rel_type: RelationType.Annotation, event_id: root.getId(), key: "👍" },
    });
    await waitFor("alice to see the reaction", () => {
        const rel = alice.getRoom(plainRoom).getUnfilteredTimelineSet().relations
            .getChildEventsForEvent(root.getId(), RelationType.Annotation, EventType.Reaction);
        return rel?.getSortedAnnotationsByKey()?.some(([key, evs]) => key === "👍" && evs.size === 1);
    });
    await alice.sendMessage(plainRoom, {
        msgtype: MsgType.Text,
        body: "* hello bob (edited)",
        "m.new_content": { msgtype: MsgType.Text, body: "hello bob (edited)" },
        "m.relates_to": { rel_type: RelationType.Replace, event_id: root.getId() },
    });
    await waitFor("bob to see the edit", () => root.replacingEvent()?.getContent()?.["m.new_content"]?.body === "hello bob (edited)");
    const reply = await bob.sendMessage(plainRoom, {
        msgtype: MsgType.Text,
        body: "in a thread",
        "m.relates_to": { rel_type: RelationType.Thread, event_id: root.getId(), is_falling_back: true, "m.in_reply_to": { event_id: root.getId() } },
    });
    await waitFor("alice to see the thread", () =>
        alice.getRoom(plainRoom).getThread(root.getId())?.events.some((e) => e.getId() === reply.event_id),
    );
    const doomed = await bob.sendMessage(plainRoom, { msgtype: MsgType.Text, body: "regrettable" });
    await expectMessage(alice, plainRoom, "regrettable", bobId);
    await bob.redactEvent(plainRoom, doomed.event_id, undefined, { reason: "oops" });
    await waitFor("alice to see the redaction", () =>
        alice.getRoom(plainRoom).findEventById(doomed.event_id)?.isRedacted(),
    );
});

await step("upload and download media (authenticated)", async () => {
    const bytes = Buffer.from(`fyr js-sdk ${run}`);
    const up = await alice.uploadContent(bytes, { name: "hello.txt", type: "text/plain" });
    check(up.content_uri.startsWith("mxc://"), `content_uri ${up.content_uri}`);
    const url = bob.mxcUrlToHttp(up.content_uri, undefined, undefined, undefined, false, true, true);
    check(url.includes("/_matrix/client/v1/media/download/"), `download url ${url}`);
    const resp = await fetch(url, { headers: { Authorization: `Bearer ${bob.getAccessToken()}` } });
    check(resp.ok, `download: ${resp.status}`);
    check((await resp.text()) === bytes.toString(), "downloaded bytes differ");
});

await step("encrypted room: each client decrypts the other", async () => {
    secretRoom = (
        await alice.createRoom({
            name: "js-sdk secret",
            preset: Preset.PrivateChat,
            invite: [bobId],
            initial_state: [{ type: EventType.RoomEncryption, state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
        })
    ).room_id;
    await waitFor("bob to see the invite", () => membership(bob, secretRoom) === "invite");
    await bob.joinRoom(secretRoom);
    await waitFor("alice to see bob join", () => memberOf(alice, secretRoom, bobId) === "join");
    check(await alice.getCrypto().isEncryptionEnabledInRoom(secretRoom), "alice does not see the room as encrypted");
    await alice.sendMessage(secretRoom, { msgtype: MsgType.Text, body: "secret from alice" });
    const got = await expectMessage(bob, secretRoom, "secret from alice", aliceId);
    check(got.getWireType() === EventType.RoomMessageEncrypted, `bob got a ${got.getWireType()}, not an encrypted event`);
    check(!got.isDecryptionFailure(), "bob failed to decrypt");
    await bob.sendMessage(secretRoom, { msgtype: MsgType.Text, body: "secret from bob" });
    const back = await expectMessage(alice, secretRoom, "secret from bob", bobId);
    check(back.getWireType() === EventType.RoomMessageEncrypted, `alice got a ${back.getWireType()}`);
});

// ---------------------------------------------------------------- simplified sliding sync

await step("sliding sync: a new device starts and sees the room list", async () => {
    alice2 = await slidingClient(await passwordLogin(aliceLocal, "js-sdk sliding sync"), "alice2");
    await waitSynced(alice2);
    await waitFor("alice2 to know both rooms", () => alice2.getRoom(plainRoom) && alice2.getRoom(secretRoom));
    noSlidingErrors();
    const list = alice2.fyrSliding.getListData("room_list");
    check(list?.joinedCount === 2, `room_list count ${list?.joinedCount}, want 2`);
    check(alice2.getRoom(plainRoom).name === "js-sdk plain", `name ${alice2.getRoom(plainRoom).name}`);
    check(alice2.getRoom(secretRoom).name === "js-sdk secret", `name ${alice2.getRoom(secretRoom).name}`);
    check(membership(alice2, plainRoom) === "join", `membership ${membership(alice2, plainRoom)}`);
    // timeline_limit 1: the newest event of each room
    const newest = (c) => c.getRoom(plainRoom).getLiveTimeline().getEvents().at(-1)?.getId();
    check(newest(alice2) === newest(alice), `alice2's newest event ${newest(alice2)}, alice's ${newest(alice)}`);
    check(await alice2.getCrypto().isEncryptionEnabledInRoom(secretRoom), "alice2 does not see the secret room as encrypted");
});

await step("sliding sync: subscribing to a room fills its timeline and state", async () => {
    alice2.fyrSliding.modifyRoomSubscriptions(new Set([plainRoom]));
    await expectMessage(alice2, plainRoom, "hello bob", aliceId);
    const room = alice2.getRoom(plainRoom);
    await waitFor("alice2 to have bob's member event", () => room.getMember(bobId)?.membership === "join");
    check(room.currentState.getStateEvents(EventType.RoomPowerLevels, ""), "power levels missing from the subscription's state");
    check(room.currentState.getStateEvents(EventType.RoomHistoryVisibility, ""), "history visibility missing");
    // Room version 12: the creator outranks everyone without being listed in the power levels.
    check(room.currentState.maySendStateEvent(EventType.RoomName, aliceId), "alice2 thinks alice may not rename her room");
    check(!room.currentState.maySendStateEvent(EventType.RoomPowerLevels, bobId), "alice2 thinks bob may change power levels");
    noSlidingErrors();
});

await step("sliding sync: live messages", async () => {
    await bob.sendMessage(plainRoom, { msgtype: MsgType.Text, body: "live to sliding" });
    await expectMessage(alice2, plainRoom, "live to sliding", bobId);
    await alice2.sendMessage(plainRoom, { msgtype: MsgType.Text, body: "live from sliding" });
    await expectMessage(bob, plainRoom, "live from sliding", aliceId);
    await expectMessage(alice2, plainRoom, "live from sliding", aliceId);
});

await step("sliding sync: typing extension", async () => {
    await bob.sendTyping(plainRoom, true, 20000);
    await waitFor("alice2 to see bob typing", () => alice2.getRoom(plainRoom).getMember(bobId)?.typing === true);
    await bob.sendTyping(plainRoom, false, 0);
    await waitFor("alice2 to see bob stop", () => alice2.getRoom(plainRoom).getMember(bobId)?.typing === false);
});

await step("sliding sync: receipts extension", async () => {
    const ev = await findMessage(bob, plainRoom, "live from sliding");
    await bob.sendReadReceipt(ev, ReceiptType.Read);
    await waitFor("alice2 to see bob's receipt", () => alice2.getRoom(plainRoom).getEventReadUpTo(bobId, true) === ev.getId());
});

await step("sliding sync: account data extension", async () => {
    await alice.setAccountData("org.fyr.jsclient", { run });
    await waitFor("alice2 to get the account data", () => alice2.getAccountData("org.fyr.jsclient")?.getContent()?.run === run);
    await alice.setRoomAccountData(plainRoom, "org.fyr.jsclient.room", { run });
    await waitFor("alice2 to get the room account data", () =>
        alice2.getRoom(plainRoom)?.getAccountData("org.fyr.jsclient.room")?.getContent()?.run === run,
    );
});

await step("sliding sync: e2ee and to-device extensions decrypt both ways", async () => {
    // bob's client learns of alice's new device from /sync's device_lists, alice2's room key
    // arrives through the to_device extension.
    await bob.sendMessage(secretRoom, { msgtype: MsgType.Text, body: "secret to sliding" });
    const got = await expectMessage(alice2, secretRoom, "secret to sliding", bobId);
    check(got.getWireType() === EventType.RoomMessageEncrypted, `alice2 got a ${got.getWireType()}`);
    // alice2 needs the members of the room to encrypt for them: subscribe as Element does.
    alice2.fyrSliding.modifyRoomSubscriptions(new Set([plainRoom, secretRoom]));
    await waitFor("alice2 to have bob's membership", () => memberOf(alice2, secretRoom, bobId) === "join");
    await alice2.sendMessage(secretRoom, { msgtype: MsgType.Text, body: "secret from sliding" });
    await expectMessage(bob, secretRoom, "secret from sliding", aliceId);
    await expectMessage(alice, secretRoom, "secret from sliding", aliceId);
    noSlidingErrors();
});

await step("sliding sync: invite, join and a new room in the list", async () => {
    inviteRoom = (await bob.createRoom({ name: "js-sdk invite", preset: Preset.PrivateChat, invite: [aliceId] })).room_id;
    await waitFor("alice2 to see the invite", () => membership(alice2, inviteRoom) === "invite");
    check(alice2.getRoom(inviteRoom).name === "js-sdk invite", `invite name ${alice2.getRoom(inviteRoom).name}`);
    await alice2.joinRoom(inviteRoom);
    await waitFor("alice2 to be joined", () => membership(alice2, inviteRoom) === "join");
    await waitFor("room_list to count 3", () => alice2.fyrSliding.getListData("room_list")?.joinedCount === 3);
    await bob.sendMessage(inviteRoom, { msgtype: MsgType.Text, body: "welcome" });
    await expectMessage(alice2, inviteRoom, "welcome", bobId);
    noSlidingErrors();
});

await step("sliding sync: a DM without a name is named after its heroes", async () => {
    const dm = (await bob.createRoom({ preset: Preset.TrustedPrivateChat, is_direct: true, invite: [aliceId] })).room_id;
    await waitFor("alice2 to see the DM invite", () => membership(alice2, dm) === "invite");
    await alice2.joinRoom(dm);
    await waitFor("alice2 to be joined to the DM", () => membership(alice2, dm) === "join");
    await bob.sendMessage(dm, { msgtype: MsgType.Text, body: "psst" });
    await expectMessage(alice2, dm, "psst", bobId);
    await waitFor(`the DM to be named ${bobLocal} (heroes), not ${alice2.getRoom(dm).name}`, () => alice2.getRoom(dm).name === bobLocal);
    await alice2.leave(dm);
});

await step("sliding sync: a second user on sliding sync, from scratch", async () => {
    bob2 = await slidingClient(await passwordLogin(bobLocal, "js-sdk sliding sync"), "bob2");
    await waitSynced(bob2);
    const joined = bob.getRooms().filter((r) => r.getMyMembership() === "join").length;
    await waitFor(`bob2's room_list to count ${joined}, as bob's /sync does`, () => bob2.fyrSliding.getListData("room_list")?.joinedCount === joined);
    // The list sends one event per room; earlier ones come from /messages at prev_batch.
    const room = await waitFor("bob2 to have the plain room", () => bob2.getRoom(plainRoom));
    for (let i = 0; i < 10 && !(await findMessage(bob2, plainRoom, "hello alice")); i++) await bob2.scrollback(room, 30);
    await expectMessage(bob2, plainRoom, "hello alice", bobId);
    await alice2.sendMessage(plainRoom, { msgtype: MsgType.Text, body: "sliding to sliding" });
    await expectMessage(bob2, plainRoom, "sliding to sliding", aliceId);
    await alice2.sendMessage(secretRoom, { msgtype: MsgType.Text, body: "secret sliding to sliding" });
    await expectMessage(bob2, secretRoom, "secret sliding to sliding", aliceId);
    noSlidingErrors();
});

await step("sliding sync: leave a room", async () => {
    await alice2.leave(inviteRoom);
    await waitFor("alice2 to see herself leave", () => membership(alice2, inviteRoom) === "leave");
    await waitFor("bob to see alice leave", () => memberOf(bob, inviteRoom, aliceId) === "leave");
    await waitFor("bob2 to see alice leave", () => memberOf(bob2, inviteRoom, aliceId) === "leave");
});

await step("sliding sync: a stale pos gets M_UNKNOWN_POS and the client starts over", async () => {
    // A pos from an older response must not be used again (MSC4186); the server says so
    // with 400 M_UNKNOWN_POS, and SlidingSync starts a new connection.
    reuseFirstPos.alice2 = true;
    alice2.fyrSliding.resend();
    await waitFor("alice2's stale request to be refused", () => slidingErrors.some((e) => e.startsWith("alice2:")));
    const refused = slidingErrors.splice(0);
    check(refused.length === 1 && refused[0].includes("400 M_UNKNOWN_POS"), `refusals: ${refused.join("; ")}`);
    await bob.sendMessage(plainRoom, { msgtype: MsgType.Text, body: "after the restart" });
    await expectMessage(alice2, plainRoom, "after the restart", bobId);
    const ids = alice2.getRoom(plainRoom).getLiveTimeline().getEvents().map((e) => e.getId());
    check(new Set(ids).size === ids.length, "alice2's timeline has duplicate events after starting over");
    await bob.sendMessage(secretRoom, { msgtype: MsgType.Text, body: "secret after the restart" });
    await expectMessage(alice2, secretRoom, "secret after the restart", bobId);
    noSlidingErrors();
});

for (const c of clients) c.stopClient();
if (slidingErrors.length > 0 && !failed) {
    failed = true;
    say(`FAIL sliding sync requests failed: ${slidingErrors.join("; ")}`);
}
const total = timings.reduce((s, [, ms]) => s + ms, 0);
say(`${timings.length} passed, ${failed ? 1 : 0} failed (${total} ms in steps)`);
process.exit(failed ? 1 : 0);
