#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# make_corpus.py [DIR]: write fuzz_reader's seed corpus (default: fuzz/corpus next to this
# script). Each seed is laid out as fuzz_reader.cpp describes: an options byte, an op count,
# the op bytes, then the stream written into the pipe. msgpack is encoded by hand so that the
# script needs nothing but Python 3, and so that malformed values are easy to write.
import os
import struct
import sys

# options byte
LARGE = 0x01            # max_message_size 64 KiB instead of 4096
DRAIN = 0x10            # the writer waits for the pipe to drain before each chunk
REPEAT = 0xE0           # 64 KiB of filler frames and the stream again follow the stream,
                        # written at once (chunk and drain are ignored)
CHUNK = {None: 0, 1: 1, 3: 2, 7: 3, 64: 4, 511: 5, 4096: 6, 40000: 7}  # bits 1-3

# ops (fuzz_reader.cpp's op_names)
OBJ, STR, VEC, BYTES, BYTES_0MS, OBJ_0MS, MAP, TUPLE = range(8)


def options(chunk=None, drain=False, large=False, repeat=False):
    return (CHUNK[chunk] << 1) | (DRAIN if drain else 0) | (LARGE if large else 0) | (REPEAT if repeat else 0)


def seed(ops, stream, **opts):
    return bytes([options(**opts), len(ops)]) + bytes(ops) + stream


def frame(payload):
    return struct.pack(">I", len(payload)) + payload


# --- a little msgpack ------------------------------------------------------------------------

def p_int(v):
    if 0 <= v < 0x80:
        return bytes([v])
    if -32 <= v < 0:
        return struct.pack("b", v)
    if 0 <= v <= 0xFFFFFFFF:
        return b"\xce" + struct.pack(">I", v)
    if 0 <= v:
        return b"\xcf" + struct.pack(">Q", v)
    if v >= -0x80000000:
        return b"\xd2" + struct.pack(">i", v)
    return b"\xd3" + struct.pack(">q", v)


def p_str(s):
    b = s.encode() if isinstance(s, str) else s
    if len(b) < 32:
        return bytes([0xA0 | len(b)]) + b
    return b"\xda" + struct.pack(">H", len(b)) + b


def p_bin(b):
    return b"\xc4" + bytes([len(b)]) + b


def p_array(items):
    body = b"".join(items)
    if len(items) < 16:
        return bytes([0x90 | len(items)]) + body
    return b"\xdc" + struct.pack(">H", len(items)) + body


def p_map(pairs):
    body = b"".join(k + v for k, v in pairs)
    return bytes([0x80 | len(pairs)]) + body


NIL, TRUE, FALSE = b"\xc0", b"\xc3", b"\xc2"


def p_double(x):
    return b"\xcb" + struct.pack(">d", x)


def p_float(x):
    return b"\xca" + struct.pack(">f", x)


# --- seeds -----------------------------------------------------------------------------------

def seeds():
    ints = [0, 1, -1, 127, 128, -33, 2**31 - 1, 2**32, -2**40, 2**63]
    yield "valid_ints", seed([OBJ], b"".join(frame(p_int(v)) for v in ints))
    yield "valid_strings", seed([STR, BYTES], frame(p_str("hello")) + frame(b"raw bytes\x00\xff") +
                               frame(p_str("x" * 40)) + frame(p_bin(b"\x00\x01")))
    yield "valid_vectors", seed([VEC], frame(p_array([p_int(1), p_int(2), p_int(3)])) +
                               frame(p_array([p_int(i) for i in range(20)])) + frame(p_array([])))
    yield "valid_map", seed([MAP, OBJ], frame(p_map([(p_str("a"), p_array([p_int(1), p_int(2)])),
                                                     (p_str("b"), p_array([]))])) +
                           frame(p_map([(p_str("k"), p_str("v"))])))
    yield "valid_tuples", seed([TUPLE], frame(p_array([p_int(1), p_str("x"), NIL])) +
                              frame(p_array([p_int(-5), p_str(""), p_double(1.5)])) +
                              frame(p_array([p_int(1)])))
    yield "valid_scalars", seed([OBJ, OBJ, VEC], frame(NIL) + frame(TRUE) + frame(FALSE) +
                               frame(p_float(0.25)) + frame(p_double(-2.5)) +
                               frame(b"\xd4\x01\x02") + frame(b"\xc7\x03\x05abc"))
    yield "raw_frames", seed([BYTES], frame(b"") + frame(bytes(range(256))) + frame(b"") +
                            frame(b"\x00" * 4096), chunk=7)
    yield "zero_length_frames", seed([OBJ, STR, VEC, BYTES], frame(b"") * 4)
    yield "oversize_header", seed([BYTES, OBJ], frame(p_int(1)) + struct.pack(">I", 4097) + b"x" * 64)
    yield "oversize_header_max", seed([OBJ, BYTES], b"\xff\xff\xff\xff" + b"\x00" * 8)
    yield "truncated_frame", seed([OBJ], frame(p_int(7)) + struct.pack(">I", 10) + b"abc")
    yield "truncated_header", seed([STR], frame(p_str("ok")) + b"\x00\x00")
    yield "invalid_msgpack", seed([OBJ, VEC, STR], frame(b"\xc1") + frame(b"\x92\x01") +
                                 frame(b"\x01\x02") + frame(p_int(3)))
    depth = 600
    yield "deeply_nested", seed([OBJ, VEC, BYTES], frame(b"\x91" * depth + b"\x00") +
                               frame(b"\x91" * 100 + b"\x00") + frame(b"\x81\xa1k" * 200 + b"\x00"))
    yield "huge_counts", seed([OBJ, VEC, MAP, TUPLE, STR],
                             frame(b"\xdd\xff\xff\xff\xff") + frame(b"\xdf\xff\xff\xff\xff") +
                             frame(b"\xdc\xff\xff" + b"\x00" * 8) + frame(b"\xdd\x00\x10\x00\x00\x01\x02\x03"))
    yield "lengths_beyond_frame", seed([STR, OBJ, OBJ, OBJ, STR],
                                      frame(b"\xd9\x10abc") + frame(b"\xdb\x7f\xff\xff\xffabc") +
                                      frame(b"\xc6\xff\xff\xff\xff\x00") + frame(b"\xc9\xff\xff\xff\xff\x01") +
                                      frame(b"\xda\x01\x00" + b"y" * 10))
    yield "wrong_types", seed([VEC, VEC, OBJ, TUPLE, MAP, STR],
                             frame(p_str("str")) + frame(p_array([p_int(1), p_str("a")])) +
                             frame(p_int(2**63)) + frame(p_array([p_str("a"), p_int(1), NIL])) +
                             frame(p_map([(p_int(1), p_int(2))])) + frame(p_int(5)))
    yield "int_overflow", seed([VEC], frame(p_array([p_int(2**31), p_int(-2**40), p_double(1.5)])))
    yield "timed_drip", seed([BYTES_0MS, OBJ_0MS, BYTES], b"".join(frame(p_int(i)) for i in range(8)) +
                            frame(b"z" * 300), chunk=1, drain=True)
    yield "chunked_drain", seed([BYTES, OBJ], b"".join(frame(p_str("m%d" % i)) for i in range(40)),
                               chunk=3, drain=True)
    large = bytes((i * 7) & 0xFF for i in range(40000))
    yield "large_frame", seed([BYTES, OBJ, BYTES], frame(large) + frame(p_int(1)) + frame(b"after"),
                             chunk=511, large=True)
    yield "large_frame_truncated", seed([BYTES], struct.pack(">I", 50000) + b"q" * 100, large=True)
    yield "padded_frames", seed([BYTES, OBJ, VEC], frame(p_int(1)) + frame(b"") +
                               frame(p_array([p_int(2), p_int(3)])), repeat=True)
    yield "padded_timed", seed([BYTES_0MS, STR], frame(p_str("timed")), repeat=True)
    yield "padded_large", seed([BYTES, OBJ], frame(b"L" * 1000), large=True, repeat=True)
    yield "large_frame_timed", seed([BYTES_0MS], frame(b"L" * 33000) + frame(b"tail"), chunk=4096,
                                   drain=True, large=True)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
    os.makedirs(out, exist_ok=True)
    for name, data in seeds():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
