(module
  (memory (export "memory") 1)
  ;; xor(ptr, len, mask): bytes [ptr, ptr+len) ^= the 4-byte mask word repeated from ptr on
  (func (export "xor") (param $p i32) (param $n i32) (param $m i32)
    (local $end i32) (local $v v128)
    (local.set $v (i32x4.splat (local.get $m)))
    (local.set $end (i32.add (local.get $p) (i32.and (local.get $n) (i32.const -64))))
    (block $done64
      (loop $l64
        (br_if $done64 (i32.ge_u (local.get $p) (local.get $end)))
        (v128.store offset=0 (local.get $p) (v128.xor (v128.load offset=0 (local.get $p)) (local.get $v)))
        (v128.store offset=16 (local.get $p) (v128.xor (v128.load offset=16 (local.get $p)) (local.get $v)))
        (v128.store offset=32 (local.get $p) (v128.xor (v128.load offset=32 (local.get $p)) (local.get $v)))
        (v128.store offset=48 (local.get $p) (v128.xor (v128.load offset=48 (local.get $p)) (local.get $v)))
        (local.set $p (i32.add (local.get $p) (i32.const 64)))
        (br $l64)))
    (local.set $n (i32.and (local.get $n) (i32.const 63)))
    (local.set $end (i32.add (local.get $p) (i32.and (local.get $n) (i32.const -4))))
    (block $done4
      (loop $l4
        (br_if $done4 (i32.ge_u (local.get $p) (local.get $end)))
        (i32.store (local.get $p) (i32.xor (i32.load (local.get $p)) (local.get $m)))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (br $l4)))
    (local.set $n (i32.and (local.get $n) (i32.const 3)))
    (block $done1
      (loop $l1
        (br_if $done1 (i32.eqz (local.get $n)))
        (i32.store8 (local.get $p) (i32.xor (i32.load8_u (local.get $p)) (local.get $m)))
        (local.set $m (i32.shr_u (local.get $m) (i32.const 8)))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $l1))))
)
