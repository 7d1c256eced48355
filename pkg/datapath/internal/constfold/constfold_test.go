package constfold

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/cilium/ebpf/asm"
)

// label marks the next instruction as a jump target in asmProg.
type label string

// asmProg builds a program as an ELF object gives it: jumps with raw offsets (items jump to a
// label by reference), functions marked by a symbol on their first instruction, calls by
// reference.
func asmProg(t *testing.T, items ...any) asm.Instructions {
	t.Helper()
	var insns asm.Instructions
	at := map[string]int{} // label -> raw slot
	slot := 0
	for _, it := range items {
		switch v := it.(type) {
		case label:
			at[string(v)] = slot
		case asm.Instruction:
			insns = append(insns, v)
			slot += int(v.Width())
		default:
			t.Fatalf("asmProg: %T", it)
		}
	}
	slot = 0
	for i, ins := range insns {
		if isJump(ins) && ins.Reference() != "" {
			to, ok := at[ins.Reference()]
			if !ok {
				t.Fatalf("asmProg: no label %q", ins.Reference())
			}
			ins.Offset = int16(to - slot - 1)
			insns[i] = ins.WithReference("")
		}
		slot += int(ins.Width())
	}
	return insns
}

func roValue(off int32) asm.Instruction {
	return asm.LoadMapValue(asm.R2, 0, uint32(off)).WithReference(".rodata")
}

// reg is a register of the interpreter: a number, or a pointer into a read-only map.
type reg struct {
	v  uint64
	ro string
}

var errStuck = errors.New("interpreter: unsupported")

// interpret runs insns (ALU, jumps, loads from read-only data, bpf-to-bpf calls and a stand-in
// helper) with r1 = in and returns r0. It is independent of the code under test so that the
// two can be held against each other.
func interpret(insns asm.Instructions, ro map[string][]byte, in uint64) (uint64, error) {
	bySlot := map[int]int{}
	syms := map[string]int{}
	slots := make([]int, len(insns))
	s := 0
	for i, ins := range insns {
		bySlot[s], slots[i] = i, s
		s += int(ins.Width())
		if ins.Symbol() != "" {
			syms[ins.Symbol()] = i
		}
	}
	type frame struct {
		ret   int
		saved [4]reg
	}
	var r [11]reg
	var stack []frame
	r[1] = reg{v: in}
	for pc, steps := 0, 0; steps < 100000; steps++ {
		if pc < 0 || pc >= len(insns) {
			return 0, fmt.Errorf("pc %d out of the program", pc)
		}
		ins := insns[pc]
		op := ins.OpCode
		next := pc + 1
		switch cls := op.Class(); {
		case op == asm.LoadImmOp(asm.DWord) && ins.Src == asm.R0:
			r[ins.Dst] = reg{v: uint64(ins.Constant)}
		case op == asm.LoadImmOp(asm.DWord) && ins.Src == asm.PseudoMapValue:
			r[ins.Dst] = reg{v: uint64(ins.Constant) >> 32, ro: ins.Reference()}
		case cls == asm.LdXClass && op.Mode() == asm.MemMode:
			p := r[ins.Src]
			data, ok := ro[p.ro]
			n := int(op.Size().Sizeof())
			off := int(p.v) + int(ins.Offset)
			if !ok || off < 0 || off+n > len(data) {
				return 0, fmt.Errorf("insn %d: load from %+v: %w", pc, p, errStuck)
			}
			buf := make([]byte, 8)
			copy(buf, data[off:off+n])
			r[ins.Dst] = reg{v: binary.LittleEndian.Uint64(buf)}
		case cls.IsALU():
			x := r[ins.Dst].v
			y := uint64(ins.Constant)
			if op.Source() == asm.RegSource {
				y = r[ins.Src].v
			}
			wide := cls == asm.ALU64Class
			if !wide {
				x, y = uint64(uint32(x)), uint64(uint32(y))
			}
			var v uint64
			switch op.ALUOp() {
			case asm.Mov:
				v = y
			case asm.Add:
				v = x + y
			case asm.Sub:
				v = x - y
			case asm.Mul:
				v = x * y
			case asm.And:
				v = x & y
			case asm.Or:
				v = x | y
			case asm.Xor:
				v = x ^ y
			case asm.LSh:
				v = x << (y & 63)
			case asm.RSh:
				v = x >> (y & 63)
			case asm.ArSh:
				if wide {
					v = uint64(int64(x) >> (y & 63))
				} else {
					v = uint64(uint32(int32(uint32(x)) >> (y & 31)))
				}
			case asm.Neg:
				v = -x
			case asm.Div:
				if y != 0 {
					v = x / y
				}
			case asm.Mod:
				v = x
				if y != 0 {
					v = x % y
				}
			case asm.Swap:
				v = x
				n := uint(ins.Constant)
				if op.Endianness() == asm.BE {
					v = 0
					for b := uint(0); b < n/8; b++ {
						v |= (x >> (8 * b) & 0xff) << (n - 8 - 8*b)
					}
				} else if n < 64 {
					v = x & (1<<n - 1)
				}
				wide = true // the width is the swap's, not the class's
			default:
				return 0, fmt.Errorf("insn %d: %v: %w", pc, ins, errStuck)
			}
			if !wide {
				v = uint64(uint32(v))
			}
			if ins.Src != asm.R0 && op.Source() == asm.RegSource && op.ALUOp() == asm.Mov && wide {
				r[ins.Dst] = r[ins.Src] // a pointer stays one
			} else {
				r[ins.Dst] = reg{v: v}
			}
		case cls.IsJump():
			switch op.JumpOp() {
			case asm.Exit:
				if len(stack) == 0 {
					return r[0].v, nil
				}
				f := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				copy(r[6:10], f.saved[:])
				next = f.ret
			case asm.Call:
				if ins.IsFunctionCall() {
					var f frame
					f.ret = pc + 1
					copy(f.saved[:], r[6:10])
					stack = append(stack, f)
					next = syms[ins.Reference()]
					break
				}
				if asm.BuiltinFunc(ins.Constant) != asm.FnGetPrandomU32 {
					return 0, fmt.Errorf("insn %d: %v: %w", pc, ins, errStuck)
				}
				r[0] = reg{v: 4} // chosen by a fair dice roll
				for n := asm.R1; n <= asm.R5; n++ {
					r[n] = reg{v: 0xdead}
				}
			case asm.Ja:
				next = bySlot[slots[pc]+1+int(ins.Offset)]
			default:
				x := r[ins.Dst].v
				y := uint64(ins.Constant)
				if op.Source() == asm.RegSource {
					y = r[ins.Src].v
				}
				if cls == asm.Jump32Class {
					x, y = uint64(uint32(x)), uint64(uint32(y))
				}
				var taken bool
				switch op.JumpOp() {
				case asm.JEq:
					taken = x == y
				case asm.JNE:
					taken = x != y
				case asm.JGT:
					taken = x > y
				case asm.JGE:
					taken = x >= y
				case asm.JLT:
					taken = x < y
				case asm.JLE:
					taken = x <= y
				case asm.JSet:
					taken = x&y != 0
				case asm.JSGT, asm.JSLT:
					sx, sy := int64(x), int64(y)
					if cls == asm.Jump32Class {
						sx, sy = int64(int32(uint32(x))), int64(int32(uint32(y)))
					}
					taken = sx > sy
					if op.JumpOp() == asm.JSLT {
						taken = sx < sy
					}
				default:
					return 0, fmt.Errorf("insn %d: %v: %w", pc, ins, errStuck)
				}
				if taken {
					next = bySlot[slots[pc]+1+int(ins.Offset)]
				}
			}
		default:
			return 0, fmt.Errorf("insn %d: %v: %w", pc, ins, errStuck)
		}
		pc = next
	}
	return 0, errors.New("interpreter: no exit in 100000 steps")
}

// testProgram is a job-like program: feature flags, a 64-bit constant that fits no
// immediate, a threshold compared register to register, a helper call whose result is kept
// in a callee-saved register, and a function called only under a flag.
func testProgram(t *testing.T) asm.Instructions {
	return asmProg(t,
		roValue(0).WithSymbol("main"),
		asm.LoadMem(asm.R3, asm.R2, 0, asm.Word), // flags
		asm.Mov.Reg(asm.R4, asm.R3),
		asm.And.Imm(asm.R4, 1),
		asm.JEq.Imm(asm.R4, 0, "no_add"),
		asm.Add.Imm(asm.R1, 10),
		label("no_add"),
		asm.Mov.Reg(asm.R4, asm.R3), // dead once the jump below is settled, and a jump target
		asm.And.Imm(asm.R4, 2),
		asm.JNE.Imm(asm.R4, 0, "no_mul"),
		asm.Mul.Imm(asm.R1, 3),
		label("no_mul"),
		roValue(8),
		asm.LoadMem(asm.R5, asm.R2, 0, asm.DWord), // does not fit an immediate
		asm.Xor.Reg(asm.R1, asm.R5),
		asm.Mov.Reg(asm.R6, asm.R1),
		roValue(16),
		asm.LoadMem(asm.R7, asm.R2, 0, asm.Word), // threshold
		asm.Mov.Reg(asm.R8, asm.R3),
		asm.And.Imm(asm.R8, 4),
		asm.JEq.Imm(asm.R8, 0, "no_call"),
		asm.Call.Label("sub"),
		asm.Add.Reg(asm.R6, asm.R0),
		label("no_call"),
		asm.FnGetPrandomU32.Call(),
		asm.Mov.Reg(asm.R0, asm.R6),
		asm.JGT.Reg(asm.R7, asm.R6, "small"), // the known operand first: compared the other way
		asm.Mov.Imm(asm.R0, 7),
		label("small"),
		asm.Return(),

		asm.Mov.Reg(asm.R0, asm.R1).WithSymbol("sub"),
		asm.LSh.Imm(asm.R0, 2),
		asm.Return(),
	)
}

func testData(flags uint32, big uint64, threshold uint32) map[string][]byte {
	b := make([]byte, 24)
	binary.LittleEndian.PutUint32(b[0:], flags)
	binary.LittleEndian.PutUint64(b[8:], big)
	binary.LittleEndian.PutUint32(b[16:], threshold)
	return map[string][]byte{".rodata": b}
}

// TestFoldKeepsMeaning holds every folded variant of the test program to the program itself,
// input by input, and checks that what the constants settle is gone.
func TestFoldKeepsMeaning(t *testing.T) {
	insns := testProgram(t)
	inputs := []uint64{0, 1, 2, 5, 99, 100, 101, 1 << 31, 1<<32 + 5, ^uint64(0)}
	for flags := range uint32(8) {
		for _, big := range []uint64{0, 1 << 40, 0xffff_ffff_ffff_fff0} {
			ro := testData(flags, big, 100)
			name := fmt.Sprintf("flags %d big %#x", flags, big)
			t.Run(name, func(t *testing.T) {
				out, st, err := Fold(insns, ro)
				if err != nil {
					t.Fatal(err)
				}
				for _, in := range inputs {
					want, err := interpret(insns, ro, in)
					if err != nil {
						t.Fatal(err)
					}
					got, err := interpret(out, ro, in)
					if err != nil {
						t.Fatalf("folded: %v\n%v", err, out)
					}
					if got != want {
						t.Fatalf("r1 %#x: folded gives %#x, the program %#x\n%v", in, got, want, out)
					}
				}
				for _, ins := range out {
					if ins.Reference() == ".rodata" {
						t.Errorf("still reads the read-only data: %v\n%v", ins, out)
					}
					if isJump(ins) && ins.OpCode.JumpOp() != asm.Ja && ins.OpCode.Source() == asm.ImmSource && ins.Dst == asm.R8 {
						t.Errorf("a jump on the flags survived: %v", ins)
					}
				}
				hasSub := false
				for _, ins := range out {
					hasSub = hasSub || ins.Symbol() == "sub"
				}
				if hasSub != (flags&4 != 0) {
					t.Errorf("function sub kept %v with flags %d", hasSub, flags)
				}
				if st.Branches < 3 || st.Loads != 3 || st.After >= st.Before {
					t.Errorf("stats %+v", st)
				}
			})
		}
	}
}

// arithProgram computes with a read-only constant in every way the folding evaluates itself
// (signed shifts, division, negation, byte swaps, 32-bit operations) and branches on the
// results with signed and 32-bit compares and a bit test.
func arithProgram(t *testing.T) asm.Instructions {
	return asmProg(t,
		roValue(0).WithSymbol("main"),
		asm.LoadMem(asm.R3, asm.R2, 0, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R3),
		asm.ArSh.Imm(asm.R4, 1),
		asm.Mov.Reg32(asm.R5, asm.R3),
		asm.ArSh.Imm32(asm.R5, 4),
		asm.Mov.Reg(asm.R6, asm.R3),
		asm.Div.Imm(asm.R6, 3),
		asm.Mov.Reg(asm.R7, asm.R3),
		asm.Mod.Imm(asm.R7, 7),
		asm.Mov.Reg(asm.R8, asm.R3),
		asm.Neg.Imm(asm.R8, 0),
		asm.Mov.Reg(asm.R9, asm.R3),
		asm.HostTo(asm.BE, asm.R9, asm.Half),
		asm.Mov.Reg(asm.R0, asm.R1),
		asm.Add.Reg(asm.R0, asm.R4),
		asm.Xor.Reg(asm.R0, asm.R5),
		asm.Add.Reg(asm.R0, asm.R6),
		asm.Xor.Reg(asm.R0, asm.R7),
		asm.Add.Reg(asm.R0, asm.R8),
		asm.Xor.Reg(asm.R0, asm.R9),
		asm.LSh.Imm32(asm.R9, 3),
		asm.Add.Reg32(asm.R0, asm.R9),
		asm.JSGT.Imm(asm.R4, 3, "l1"), // equal for the constants 6 and 7
		asm.Add.Imm(asm.R0, 100),
		label("l1"),
		asm.JSLT.Imm32(asm.R3, 0, "l2"),
		asm.Add.Imm(asm.R0, 1000),
		label("l2"),
		asm.JSet.Imm(asm.R3, 4, "l3"),
		asm.Add.Imm(asm.R0, 7),
		label("l3"),
		asm.Return(),
	)
}

func TestFoldArithmetic(t *testing.T) {
	insns := arithProgram(t)
	for _, c := range []uint32{0, 4, 6, 7, 0x1234, 0x7fffffff, 0x80000005, 0xfffffff0, 0xffffffff} {
		ro := testData(c, 0, 0)
		out, st, err := Fold(insns, ro)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range []uint64{0, 1, 1 << 33, ^uint64(0)} {
			want, err := interpret(insns, ro, in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := interpret(out, ro, in)
			if err != nil || got != want {
				t.Fatalf("constant %#x, r1 %#x: folded gives %#x (%v), the program %#x\n%v", c, in, got, err, want, out)
			}
		}
		if st.Branches != 3 {
			t.Errorf("constant %#x: %d branches settled, want 3", c, st.Branches)
		}
	}
}

// TestFoldLeavesUnknowns: without read-only data nothing is known, and the program is kept
// as it is, but for what was never reachable.
func TestFoldLeavesUnknowns(t *testing.T) {
	insns := testProgram(t)
	out, st, err := Fold(insns, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Branches != 0 || st.Loads != 0 || len(out) != len(insns) {
		t.Errorf("folded without data: %+v\n%v", st, out)
	}
}

func TestFoldRefuses(t *testing.T) {
	for name, insns := range map[string]asm.Instructions{
		"long jump":      {asm.Mov.Imm(asm.R0, 0).WithSymbol("main"), {OpCode: asm.OpCode(asm.Jump32Class).SetJumpOp(asm.Ja)}, asm.Return()},
		"jump nowhere":   {asm.Mov.Imm(asm.R0, 0).WithSymbol("main"), {OpCode: asm.OpCode(asm.JumpClass).SetJumpOp(asm.Ja), Offset: 5}, asm.Return()},
		"no entry point": {asm.Mov.Imm(asm.R0, 0), asm.Return()},
	} {
		if _, _, err := Fold(insns, nil); err == nil {
			t.Errorf("%s: folded", name)
		}
	}
}

// The immediates Fold writes stand for exactly the value they replace.
func TestMovImm(t *testing.T) {
	for _, v := range []uint64{0, 1, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 1 << 32, ^uint64(0), 0xffff_ffff_8000_0000, 0xffff_ffff_7fff_ffff} {
		m, ok := movImm(asm.R1, v)
		if !ok {
			if s := int64(v); v <= 0xffff_ffff || (s >= -1<<31 && s < 1<<31) {
				t.Errorf("%#x: no instruction", v)
			}
			continue
		}
		got, err := interpret(asm.Instructions{m.WithSymbol("main"), asm.Mov.Reg(asm.R0, asm.R1), asm.Return()}, nil, 0)
		if err != nil || got != v {
			t.Errorf("%#x: %v gives %#x (%v)", v, m, got, err)
		}
	}
}
