#!/usr/bin/env python3
"""A pjsua2 (PJSIP 2.15, PyPI `pjsua2-python`) SIP user agent for the call tests.

It runs headless on PJSIP's null audio device, optionally registers one account with digest
(mss's local users), and is driven by one command per line on stdin. Every event it sees is
one JSON object per line on stdout; nothing else is written there (PJSIP's own console output
goes to stderr, its SIP message log to the --trace file).

Commands (the optional CALL is the agent's call number from the `incoming`/`calling` event;
without it the command goes to the newest call that is not over):

    call URI               place a call (URI: sip:..., or a bare extension, sent to the registrar)
    answer [CODE] [CALL]   answer an incoming call (default 200; 180/183 for provisional)
    hold [CALL]            re-INVITE with a=sendonly (pjsua2 Call.setHold)
    resume [CALL]          re-INVITE with a=sendrecv (PJSUA_CALL_UNHOLD)
    hangup [CODE] [CALL]   CANCEL, decline (with CODE) or BYE, whatever the state needs
    reject CODE [CALL]     decline an incoming call not yet answered with final CODE (300-699)
    xfer URI [CALL]        blind transfer: REFER with Refer-To URI (pjsua2 Call.xfer; a bare
                           extension is sent to the registrar's domain)
    xfer_replaces DEST [CALL]  attended transfer: REFER with Refer-To naming our call DEST
                           with ?Replaces= (pjsua2 Call.xferReplaces)
    rtp [CALL]             report the audio stream: where it sends and what it received
    unregister             REGISTER with Expires: 0
    quit                   hang up everything, unregister, exit 0

Events (the `event` field; every one has `t`, seconds since the agent started):

    ready        {port, transport}             the SIP transport is bound
    reg          {code, reason, expires}       an answer to a REGISTER (final ones)
    calling      {call, uri}                   a call was placed
    incoming     {call, from, to, call_id, sdp_dir}   an INVITE arrived (before any answer)
    rx_response  {call, method, code, reason, sdp_dir, call_info, warning}  a response of a
                                               call's transaction (call_info, warning: those
                                               headers' values, or null)
    rx_request   {call, method, sdp_dir}        a request inside a call (re-INVITE, BYE, CANCEL…)
    state        {call, state, code, reason}   the call's state (CALLING, EARLY, CONNECTING,
                                               CONFIRMED, DISCONNECTED); code/reason: the last
    media        {call, status, dir}           media state: NONE, ACTIVE, LOCAL_HOLD, REMOTE_HOLD
    xfer_status  {call, code, reason, final}   a NOTIFY of our REFER (its sipfrag status)
    rtp          {call, remote, codec, rx_pkt, tx_pkt}   the answer to `rtp`
    error        {command, message}            a command failed (the agent goes on)
    retry        {command}                     hold/resume waits for a pending INVITE of the
                                               call (retried every 100 ms, for 5 s at most;
                                               later commands wait behind it)
    bye          {}                            the agent is exiting

`sdp_dir` is the direction attribute of the message's SDP (sendrecv, sendonly, recvonly,
inactive; `sendrecv` when the SDP names none; null without SDP).

Options: see --help (`--bind` puts SIP and RTP on another local address than 127.0.0.1,
e.g. a phone's private address in a network namespace behind NAT). The agent ends by itself after --lifetime seconds, so a test that dies
cannot leave it running.
"""

import argparse
import json
import os
import queue
import re
import sys
import threading
import time

# Keep stdout for our JSON lines alone: PJSIP writes its console log to fd 1 from C, so fd 1
# becomes stderr and our events go to a duplicate of the original stdout.
_events_fd = os.dup(1)
os.dup2(2, 1)
_events = os.fdopen(_events_fd, "w", buffering=1)

try:
    import pjsua2 as pj
except ImportError as e:  # pragma: no cover - reported to the test
    _events.write(json.dumps({"event": "fatal", "message": "cannot import pjsua2: %s" % e}) + "\n")
    sys.exit(3)

START = time.monotonic()


def emit(event, **fields):
    fields = dict(event=event, t=round(time.monotonic() - START, 3), **fields)
    _events.write(json.dumps(fields) + "\n")
    _events.flush()


def sdp_direction(msg):
    """The direction of the SDP in the SIP message text `msg`, or None without SDP."""
    if not msg:
        return None
    head, sep, body = msg.partition("\r\n\r\n")
    if not sep:
        head, sep, body = msg.partition("\n\n")
    if "v=0" not in body:
        return None
    # The media-level attribute wins over the session-level one; the first audio stream counts.
    session, _, media = body.partition("m=")
    direction = "sendrecv"
    for part in (session, media):
        for d in ("sendrecv", "sendonly", "recvonly", "inactive"):
            if re.search(r"^a=%s\s*$" % d, part, re.M):
                direction = d
    return direction


def first_line(msg):
    return msg.split("\r\n", 1)[0] if msg else ""


def header(msg, name):
    for line in msg.split("\r\n"):
        if line.lower().startswith(name.lower() + ":"):
            return line.split(":", 1)[1].strip()
    return None


# PJ_EINVALIDOP: the operation is not allowed now (e.g. a re-INVITE while one is pending).
PJ_EINVALIDOP = 70013

STATE_NAMES = {
    pj.PJSIP_INV_STATE_NULL: "NULL",
    pj.PJSIP_INV_STATE_CALLING: "CALLING",
    pj.PJSIP_INV_STATE_INCOMING: "INCOMING",
    pj.PJSIP_INV_STATE_EARLY: "EARLY",
    pj.PJSIP_INV_STATE_CONNECTING: "CONNECTING",
    pj.PJSIP_INV_STATE_CONFIRMED: "CONFIRMED",
    pj.PJSIP_INV_STATE_DISCONNECTED: "DISCONNECTED",
}
MEDIA_NAMES = {
    pj.PJSUA_CALL_MEDIA_NONE: "NONE",
    pj.PJSUA_CALL_MEDIA_ACTIVE: "ACTIVE",
    pj.PJSUA_CALL_MEDIA_LOCAL_HOLD: "LOCAL_HOLD",
    pj.PJSUA_CALL_MEDIA_REMOTE_HOLD: "REMOTE_HOLD",
    pj.PJSUA_CALL_MEDIA_ERROR: "ERROR",
}
DIR_NAMES = {
    pj.PJMEDIA_DIR_NONE: "inactive",
    pj.PJMEDIA_DIR_ENCODING: "sendonly",
    pj.PJMEDIA_DIR_DECODING: "recvonly",
    pj.PJMEDIA_DIR_ENCODING_DECODING: "sendrecv",
}


class Agent:
    def __init__(self, args):
        self.args = args
        self.calls = {}  # number -> AgentCall (kept referenced: pjsua2 needs it alive)
        self.next_number = 1
        self.account = None
        self.ep = None
        self.tone = None
        self.recorders = []


class AgentCall(pj.Call):
    def __init__(self, agent, acc, call_id=pj.PJSUA_INVALID_ID):
        pj.Call.__init__(self, acc, call_id)
        self.agent = agent
        self.number = agent.next_number
        agent.next_number += 1
        agent.calls[self.number] = self
        self.over = False
        self.reported = set()  # the text of the received messages already reported
        self.recorder = None

    def onCallState(self, prm):
        ci = self.getInfo()
        state = STATE_NAMES.get(ci.state, str(ci.state))
        if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.over = True
            # A final failure response of the INVITE ends the call before (and instead of)
            # onCallTsxState: report it from the event that disconnected the call.
            self.report_rx(prm.e)
        emit("state", call=self.number, state=state, code=ci.lastStatusCode, reason=ci.lastReason)

    def onCallTsxState(self, prm):
        self.report_rx(prm.e)

    def report_rx(self, e):
        """An `rx_response`/`rx_request` event for a message received in SIP event `e`
        (once per message)."""
        if e.type != pj.PJSIP_EVENT_TSX_STATE:
            return
        ts = e.body.tsxState
        if ts.type != pj.PJSIP_EVENT_RX_MSG:
            return
        msg = ts.src.rdata.wholeMsg
        line = first_line(msg)
        if msg in self.reported:
            return
        self.reported.add(msg)
        if line.startswith("SIP/2.0 "):
            parts = line.split(" ", 2)
            emit(
                "rx_response",
                call=self.number,
                method=ts.tsx.method,
                code=int(parts[1]),
                reason=parts[2] if len(parts) > 2 else "",
                sdp_dir=sdp_direction(msg),
                call_info=header(msg, "Call-Info"),
                warning=header(msg, "Warning"),
            )
        else:
            emit("rx_request", call=self.number, method=line.split(" ", 1)[0], sdp_dir=sdp_direction(msg))

    def onCallTransferStatus(self, prm):
        emit(
            "xfer_status",
            call=self.number,
            code=prm.statusCode,
            reason=prm.reason,
            final=bool(prm.finalNotify),
        )

    def onCallMediaState(self, prm):
        ci = self.getInfo()
        for mi in ci.media:
            if mi.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            emit(
                "media",
                call=self.number,
                status=MEDIA_NAMES.get(mi.status, str(mi.status)),
                dir=DIR_NAMES.get(mi.dir, str(mi.dir)),
            )
            if mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                self.connect_audio(mi.index)

    def connect_audio(self, index):
        """The optional tone and recording (plumbing for the media-relay tests)."""
        a = self.agent
        try:
            media = self.getAudioMedia(index)
        except pj.Error:
            return
        if a.args.tone:
            if a.tone is None:
                a.tone = pj.ToneGenerator()
                a.tone.createToneGenerator()
                desc = pj.ToneDesc()
                desc.freq1 = a.args.tone
                desc.freq2 = 0
                desc.on_msec = 1000
                desc.off_msec = 0
                descs = pj.ToneDescVector()
                descs.append(desc)
                a.tone.play(descs, True)
            a.tone.startTransmit(media)
        if a.args.record:
            # One recording per call: a re-INVITE (a transfer) reconnects the new media
            # to the same recorder.
            if self.recorder is None:
                self.recorder = pj.AudioMediaRecorder()
                self.recorder.createRecorder("%s-call%d.wav" % (a.args.record, self.number))
                a.recorders.append(self.recorder)
            media.startTransmit(self.recorder)


class AgentAccount(pj.Account):
    def __init__(self, agent):
        pj.Account.__init__(self)
        self.agent = agent

    def onRegState(self, prm):
        if prm.code >= 200:
            emit("reg", code=prm.code, reason=prm.reason, expires=prm.expiration)

    def onIncomingCall(self, prm):
        a = self.agent
        call = AgentCall(a, self, prm.callId)
        msg = prm.rdata.wholeMsg
        emit(
            "incoming",
            call=call.number,
            **{"from": header(msg, "From") or header(msg, "f")},
            to=header(msg, "To") or header(msg, "t"),
            call_id=header(msg, "Call-ID") or header(msg, "i"),
            sdp_dir=sdp_direction(msg),
        )
        op = pj.CallOpParam()
        if a.args.auto_answer:
            op.statusCode = a.args.auto_answer
        else:
            op.statusCode = 180
        try:
            call.answer(op)
        except pj.Error as e:
            emit("error", command="answer", message=e.info())


def pick_call(agent, arg):
    if arg is not None:
        return agent.calls.get(int(arg))
    live = [c for n, c in sorted(agent.calls.items()) if not c.over]
    return live[-1] if live else None


def run_command(agent, line):
    words = line.split()
    if not words:
        return True
    cmd, rest = words[0], words[1:]
    a = agent
    try:
        if cmd == "call":
            uri = rest[0]
            if not uri.startswith("sip:"):
                uri = "sip:%s@%s" % (uri, a.args.domain or a.args.registrar)
            call = AgentCall(a, a.account)
            emit("calling", call=call.number, uri=uri)
            op = pj.CallOpParam(True)
            call.makeCall(uri, op)
        elif cmd == "answer":
            code = int(rest[0]) if rest else 200
            call = pick_call(a, rest[1] if len(rest) > 1 else None)
            if call is None:
                raise ValueError("no call to answer")
            op = pj.CallOpParam()
            op.statusCode = code
            call.answer(op)
        elif cmd == "hold":
            call = pick_call(a, rest[0] if rest else None)
            if call is None:
                raise ValueError("no call to hold")
            call.setHold(pj.CallOpParam(True))
        elif cmd == "resume":
            call = pick_call(a, rest[0] if rest else None)
            if call is None:
                raise ValueError("no call to resume")
            op = pj.CallOpParam(True)
            op.opt.flag = pj.PJSUA_CALL_UNHOLD
            call.reinvite(op)
        elif cmd == "hangup":
            code = int(rest[0]) if rest else 0
            call = pick_call(a, rest[1] if len(rest) > 1 else None)
            if call is None:
                raise ValueError("no call to hang up")
            op = pj.CallOpParam()
            op.statusCode = code
            call.hangup(op)
        elif cmd == "reject":
            code = int(rest[0])
            if not 300 <= code <= 699:
                raise ValueError("reject needs a final code 300-699, not %d" % code)
            call = pick_call(a, rest[1] if len(rest) > 1 else None)
            if call is None:
                raise ValueError("no call to reject")
            ci = call.getInfo()
            if ci.role != pj.PJSIP_ROLE_UAS or ci.state not in (
                pj.PJSIP_INV_STATE_INCOMING,
                pj.PJSIP_INV_STATE_EARLY,
            ):
                raise ValueError("call %d is not an incoming call waiting for an answer" % call.number)
            op = pj.CallOpParam()
            op.statusCode = code
            call.hangup(op)
        elif cmd in TRANSFER_COMMANDS:
            transfer_command(a, cmd, rest)
        elif cmd == "unregister":
            a.account.setRegistration(False)
        elif cmd == "quit":
            return False
        else:
            raise ValueError("unknown command %r" % cmd)
    except pj.Error as e:
        if cmd in ("hold", "resume") and e.status == PJ_EINVALIDOP:
            # An INVITE of the call is still pending (pjsua2's own re-INVITE after an
            # answer, DESIGN §7): try again shortly, as a user pressing the key again would.
            return "retry"
        emit("error", command=line, message=e.info())
    except (ValueError, IndexError) as e:
        emit("error", command=line, message=str(e))
    return True


TRANSFER_COMMANDS = ("xfer", "xfer_replaces", "rtp")


def transfer_command(agent, cmd, rest):
    """The transfer commands and `rtp` (see the module docs)."""
    a = agent
    if cmd == "xfer":
        uri = rest[0]
        if not uri.startswith("sip:"):
            uri = "sip:%s@%s" % (uri, a.args.domain or a.args.registrar)
        call = pick_call(a, rest[1] if len(rest) > 1 else None)
        if call is None:
            raise ValueError("no call to transfer")
        call.xfer(uri, pj.CallOpParam(True))
    elif cmd == "xfer_replaces":
        dest = a.calls.get(int(rest[0]))
        call = pick_call(a, rest[1] if len(rest) > 1 else None)
        if dest is None or call is None:
            raise ValueError("no such calls to transfer")
        call.xferReplaces(dest, pj.CallOpParam(True))
    elif cmd == "rtp":
        call = pick_call(a, rest[0] if rest else None)
        if call is None:
            raise ValueError("no call")
        info = call.getStreamInfo(0)
        stat = call.getStreamStat(0)
        emit(
            "rtp",
            call=call.number,
            remote=info.remoteRtpAddress,
            codec=info.codecName,
            rx_pkt=stat.rtcp.rxStat.pkt,
            tx_pkt=stat.rtcp.txStat.pkt,
            rx_loss=stat.rtcp.rxStat.loss,
            rx_discard=stat.rtcp.rxStat.discard,
            rx_reorder=stat.rtcp.rxStat.reorder,
            rx_dup=stat.rtcp.rxStat.dup,
            jb_discard=stat.jbuf.discard,
            jb_lost=stat.jbuf.lost,
        )


def read_stdin(q):
    for line in sys.stdin:
        q.put(line.strip())
    q.put("quit")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--user", help="account user (no account without it)")
    p.add_argument("--password", default="")
    p.add_argument("--domain", help="the SIP domain of the account's AOR (default: the registrar)")
    p.add_argument("--registrar", help="HOST:PORT of the registrar; every request of the account goes there")
    p.add_argument("--no-register", action="store_true", help="an account without REGISTER")
    p.add_argument("--transport", choices=["udp", "tcp"], default="udp")
    p.add_argument("--port", type=int, default=0, help="local SIP port (0: any free one)")
    p.add_argument("--bind", default="127.0.0.1", help="the local address for SIP and RTP (default 127.0.0.1)")
    p.add_argument("--auto-answer", type=int, default=0, help="answer every incoming call with this code (e.g. 200)")
    p.add_argument("--expires", type=int, default=300)
    p.add_argument("--trace", help="file for PJSIP's log with every SIP message")
    p.add_argument("--tone", type=int, default=0, help="play a tone of this frequency (Hz) into every call")
    p.add_argument("--record", help="record each call's received audio to PREFIX-callN.wav")
    p.add_argument("--lifetime", type=float, default=120.0, help="exit after this many seconds")
    args = p.parse_args()

    agent = Agent(args)
    ep = pj.Endpoint()
    agent.ep = ep
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.uaConfig.userAgent = "mss-test pjsua2 %s" % ep.libVersion().full
    cfg.uaConfig.stunServer = pj.StringVector()
    cfg.logConfig.consoleLevel = 0
    cfg.logConfig.msgLogging = 1
    if args.trace:
        cfg.logConfig.filename = args.trace
        cfg.logConfig.level = 5
    else:
        cfg.logConfig.level = 0
    cfg.medConfig.noVad = True
    ep.libInit(cfg)
    ep.audDevManager().setNullDev()

    tcfg = pj.TransportConfig()
    tcfg.port = args.port
    tcfg.boundAddress = args.bind
    tcfg.publicAddress = args.bind
    kind = pj.PJSIP_TRANSPORT_TCP if args.transport == "tcp" else pj.PJSIP_TRANSPORT_UDP
    tid = ep.transportCreate(kind, tcfg)
    ep.libStart()
    info = ep.transportGetInfo(tid)
    port = int(info.localName.rsplit(":", 1)[1])

    acfg = pj.AccountConfig()
    if args.user:
        domain = args.domain or args.registrar
        acfg.idUri = "sip:%s@%s" % (args.user, domain)
        if args.registrar:
            target = "sip:%s;transport=%s" % (args.registrar, args.transport)
            acfg.regConfig.registrarUri = target
            acfg.regConfig.registerOnAdd = not args.no_register
            acfg.regConfig.timeoutSec = args.expires
            acfg.sipConfig.proxies.append("sip:%s;transport=%s;lr" % (args.registrar, args.transport))
        cred = pj.AuthCredInfo("digest", "*", args.user, 0, args.password)
        acfg.sipConfig.authCreds.append(cred)
    else:
        acfg.idUri = "sip:agent@%s:%d" % (args.bind, port)
    acfg.sipConfig.transportId = tid
    acfg.mediaConfig.transportConfig.boundAddress = args.bind
    acfg.mediaConfig.transportConfig.publicAddress = args.bind
    acfg.natConfig.iceEnabled = False
    acfg.natConfig.sipStunUse = pj.PJSUA_STUN_USE_DISABLED
    acfg.natConfig.mediaStunUse = pj.PJSUA_STUN_USE_DISABLED
    acc = AgentAccount(agent)
    acc.create(acfg)
    agent.account = acc
    emit("ready", port=port, transport=args.transport)

    commands = queue.Queue()
    threading.Thread(target=read_stdin, args=(commands,), daemon=True).start()
    deadline = START + args.lifetime
    running = True
    deferred = None  # (line, give_up_at, next_try_at) of a hold/resume that must wait
    while running and time.monotonic() < deadline:
        ep.libHandleEvents(20)
        now = time.monotonic()
        if deferred is not None and now >= deferred[2]:
            line, give_up, _ = deferred
            result = run_command(agent, line)
            if result == "retry" and now < give_up:
                deferred = (line, give_up, now + 0.1)
            else:
                if result == "retry":
                    emit("error", command=line, message="an INVITE stayed pending for 5 s")
                deferred = None
            continue
        while running and deferred is None:
            try:
                line = commands.get_nowait()
            except queue.Empty:
                break
            result = run_command(agent, line)
            if result == "retry":
                emit("retry", command=line)
                deferred = (line, now + 5.0, now + 0.1)
            else:
                running = result

    # Shut down: hang up, unregister, give the answers a moment (bounded), then destroy.
    ep.hangupAllCalls()
    if args.user and args.registrar and not args.no_register:
        try:
            acc.setRegistration(False)
        except pj.Error:
            pass
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        ep.libHandleEvents(20)
    emit("bye")
    agent.calls.clear()
    agent.recorders = []
    agent.tone = None
    acc.shutdown()
    ep.libDestroy()


if __name__ == "__main__":
    main()
