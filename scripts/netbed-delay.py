#!/usr/bin/env python3
"""Adds a fixed delay to every packet of one NFQUEUE: the test bed's stand-in for `tc netem delay`
on kernels without netem (test/helpers/netbed.ts). A rule such as
    iptables -A OUTPUT -o eth0 -j NFQUEUE --queue-num 0 --queue-bypass
hands each packet to this process, which gives the kernel its verdict (accept) DELAY_MS later, in
arrival order. Raw netlink (nfnetlink_queue), the standard library only, metadata only (no copy
of the payload).  Usage: netbed-delay.py QUEUE DELAY_MS   (prints "ready" once bound)"""
import heapq
import select
import socket
import struct
import sys
import time

QUEUE = int(sys.argv[1])
DELAY = float(sys.argv[2]) / 1000.0
NETLINK_NETFILTER = 12
SUBSYS_QUEUE = 3
MSG_PACKET, MSG_VERDICT, MSG_CONFIG = 0, 1, 2
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
CFG_CMD, CFG_PARAMS = 1, 2
CMD_BIND = 1
COPY_META = 1
ATTR_PACKET_HDR, ATTR_VERDICT_HDR = 1, 2
NF_ACCEPT = 1

sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
sock.bind((0, 0))
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
seq = 0


def attr(kind, payload):
    n = 4 + len(payload)
    return struct.pack('=HH', n, kind) + payload + b'\0' * ((4 - n % 4) % 4)


def send(msg_type, attrs, flags=NLM_F_REQUEST):
    global seq
    seq += 1
    body = struct.pack('=BBH', socket.AF_UNSPEC, 0, socket.htons(QUEUE)) + b''.join(attrs)
    sock.send(struct.pack('=IHHII', 16 + len(body), (SUBSYS_QUEUE << 8) | msg_type, flags, seq, 0) + body)


send(MSG_CONFIG, [attr(CFG_CMD, struct.pack('=BBH', CMD_BIND, 0, 0))], NLM_F_REQUEST | NLM_F_ACK)
send(MSG_CONFIG, [attr(CFG_PARAMS, struct.pack('>IB', 0, COPY_META) + b'\0\0\0')], NLM_F_REQUEST | NLM_F_ACK)
acks = 0
held = []  # (deadline, packet id): deadlines grow with arrival, so verdicts keep the order
while True:
    timeout = max(0.0, held[0][0] - time.monotonic()) if held else None
    readable, _, _ = select.select([sock], [], [], timeout)
    if readable:
        data = sock.recv(1 << 16)
        off = 0
        while off + 16 <= len(data):
            length, kind = struct.unpack_from('=IH', data, off)
            if length < 16:
                break
            if kind == NLMSG_ERROR:
                err = struct.unpack_from('=i', data, off + 16)[0]
                if err != 0:
                    sys.stderr.write('netbed-delay: netlink error %d (is nfnetlink_queue available?)\n' % err)
                    sys.exit(1)
                acks += 1
                if acks == 2:
                    print('ready', flush=True)
            elif kind == (SUBSYS_QUEUE << 8) | MSG_PACKET:
                a = off + 20
                while a + 4 <= off + length:
                    alen, atype = struct.unpack_from('=HH', data, a)
                    if alen < 4:
                        break
                    if (atype & 0x7fff) == ATTR_PACKET_HDR:
                        packet_id = struct.unpack_from('>I', data, a + 4)[0]
                        heapq.heappush(held, (time.monotonic() + DELAY, packet_id))
                    a += (alen + 3) & ~3
            off += (length + 3) & ~3
    now = time.monotonic()
    while held and held[0][0] <= now:
        _, packet_id = heapq.heappop(held)
        send(MSG_VERDICT, [attr(ATTR_VERDICT_HDR, struct.pack('>II', NF_ACCEPT, packet_id))])
