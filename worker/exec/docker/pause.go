package docker

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// pauseProgram returns a minimal static Linux executable for arch (Go's
// GOARCH names) that does nothing but wait for signals, forever. It is the
// only file of the sandbox image: the process that holds an overlay-
// attached task's network namespace while its container starts, restarts
// and stops. It is built here, byte by byte, because the engine has no
// image to take such a process from and cannot pull one.
func pauseProgram(arch string) ([]byte, error) {
	var (
		machine uint16
		code    []byte
	)
	switch arch {
	case "amd64":
		machine = 0x3e // EM_X86_64
		code = []byte{
			0xb8, 0x22, 0x00, 0x00, 0x00, // mov eax, 34 (pause)
			0x0f, 0x05, // syscall
			0xeb, 0xf7, // jmp back to the mov
		}
	case "arm64":
		machine = 0xb7 // EM_AARCH64
		// arm64 has no pause(2): ppoll with no descriptors and no
		// timeout waits for a signal the same way.
		for _, insn := range []uint32{
			0xd2800000, // mov x0, #0
			0xd2800001, // mov x1, #0
			0xd2800002, // mov x2, #0
			0xd2800003, // mov x3, #0
			0xd2800928, // mov x8, #73 (ppoll)
			0xd4000001, // svc #0
			0x17fffffa, // b back to the first mov
		} {
			code = binary.LittleEndian.AppendUint32(code, insn)
		}
	default:
		return nil, fmt.Errorf("no sandbox process for architecture %q (only amd64 and arm64)", arch)
	}
	const (
		base      = 0x400000
		ehdrSize  = 64
		phdrSize  = 56
		entryAddr = base + ehdrSize + phdrSize
	)
	size := uint64(ehdrSize + phdrSize + len(code))
	var b bytes.Buffer
	le := binary.LittleEndian
	// ELF header.
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2 /* 64-bit */, 1 /* little endian */, 1 /* version */, 0 /* System V */})
	b.Write(make([]byte, 8))
	binary.Write(&b, le, uint16(2)) // ET_EXEC
	binary.Write(&b, le, machine)
	binary.Write(&b, le, uint32(1)) // version
	binary.Write(&b, le, uint64(entryAddr))
	binary.Write(&b, le, uint64(ehdrSize)) // program headers right after
	binary.Write(&b, le, uint64(0))        // no section headers
	binary.Write(&b, le, uint32(0))        // flags
	binary.Write(&b, le, uint16(ehdrSize))
	binary.Write(&b, le, uint16(phdrSize))
	binary.Write(&b, le, uint16(1)) // one program header
	binary.Write(&b, le, uint16(64))
	binary.Write(&b, le, uint16(0))
	binary.Write(&b, le, uint16(0))
	// One loadable, readable and executable segment: the whole file.
	binary.Write(&b, le, uint32(1)) // PT_LOAD
	binary.Write(&b, le, uint32(5)) // PF_R | PF_X
	binary.Write(&b, le, uint64(0))
	binary.Write(&b, le, uint64(base))
	binary.Write(&b, le, uint64(base))
	binary.Write(&b, le, size)
	binary.Write(&b, le, size)
	binary.Write(&b, le, uint64(0x1000))
	b.Write(code)
	return b.Bytes(), nil
}
