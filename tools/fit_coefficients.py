#!/usr/bin/env python3
"""Fits the polynomial coefficients of boa's deterministic exp and erf (docs/determinism.md).

Run once; its output is pasted into common/engine/detmath.h as hexadecimal float literals.
Needs only mpmath. The coefficients are part of the format: changing them changes every
model-coded stream, so they are fixed by the format version, not refitted at build time.
"""
import struct
import mpmath as mp

mp.mp.dps = 40


def f32(x):
    return struct.unpack('<f', struct.pack('<f', float(x)))[0]


def show(name, coeffs):
    # chebyfit returns the highest degree first
    print(f"// {name}: degree {len(coeffs) - 1}, highest degree first")
    for c in coeffs:
        print(f"  {f32(c).hex()}f,  // {float(c):.10e}")


# e^r on |r| <= ln2/2 (after range reduction x = k ln2 + r)
h = mp.log(2) / 2
e, err = mp.chebyfit(mp.exp, [-h, h], 7, error=True)
print("// exp: max abs err", mp.nstr(err, 3))
show("E(r), e^r", e)

# erf(x) = x * P(x^2) on |x| < 1
p, err = mp.chebyfit(lambda s: mp.erf(mp.sqrt(s)) / mp.sqrt(s) if s > 0 else 2 / mp.sqrt(mp.pi),
                     [0, 1], 8, error=True)
print("// small: max abs err", mp.nstr(err, 3))
show("P_small(s), erf(x) = x*P(x*x)", p)

# erfc(a) * exp(a^2) on [1, 4), in the centred variable t = a - 2.5 (exact in float)
q, err = mp.chebyfit(lambda t: mp.erfc(t + 2.5) * mp.exp((t + 2.5) ** 2), [-1.5, 1.5], 13, error=True)
print("// large: max abs err", mp.nstr(err, 3))
show("Q_large(t), erf(a) = 1 - exp(-a*a)*Q(a - 2.5)", q)
