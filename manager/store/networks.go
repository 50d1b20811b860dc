package store

import (
	"fmt"
	"strings"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// nameIndex indexes objects by a name taken from them with get. Names are
// unique; fold lower-cases them first, for names unique regardless of case.
type nameIndex struct {
	what string
	get  func(obj any) (string, bool)
	fold bool
}

func (ix nameIndex) key(name string) []byte {
	if ix.fold {
		name = strings.ToLower(name)
	}
	return []byte(name + "\x00")
}

func (ix nameIndex) FromObject(obj any) (bool, []byte, error) {
	name, ok := ix.get(obj)
	if !ok {
		return false, nil, fmt.Errorf("%s name index: unexpected %T", ix.what, obj)
	}
	if name == "" {
		return false, nil, nil
	}
	return true, ix.key(name), nil
}

func (ix nameIndex) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("%s name index: want one argument, got %d", ix.what, len(args))
	}
	name, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("%s name index: argument is %T, not a string", ix.what, args[0])
	}
	return ix.key(name), nil
}

var networkNameIndex = nameIndex{what: "network", get: func(obj any) (string, bool) {
	n, ok := obj.(*shoalpb.Network)
	return n.GetSpec().GetName(), ok
}}

func (tx readTx) Network(id string) *shoalpb.Network {
	o, err := tx.txn.First(tableNetwork, indexID, id)
	if err != nil || o == nil {
		return nil
	}
	return o.(*shoalpb.Network)
}

func (tx readTx) Networks() []*shoalpb.Network {
	it, err := tx.txn.Get(tableNetwork, indexID)
	if err != nil {
		return nil
	}
	var out []*shoalpb.Network
	for o := it.Next(); o != nil; o = it.Next() {
		out = append(out, o.(*shoalpb.Network))
	}
	return out
}

func (tx readTx) NetworkByName(name string) *shoalpb.Network {
	o, err := tx.txn.First(tableNetwork, indexName, name)
	if err != nil || o == nil {
		return nil
	}
	return o.(*shoalpb.Network)
}

func (tx readTx) FindNetwork(ref string) (*shoalpb.Network, error) {
	if ref == "" {
		return nil, fmt.Errorf("network reference is empty: %w", ErrNotExist)
	}
	if n := tx.Network(ref); n != nil {
		return n, nil
	}
	if n := tx.NetworkByName(ref); n != nil {
		return n, nil
	}
	var byPrefix []*shoalpb.Network
	for _, n := range tx.Networks() {
		if strings.HasPrefix(n.Id, ref) {
			byPrefix = append(byPrefix, n)
		}
	}
	switch len(byPrefix) {
	case 1:
		return byPrefix[0], nil
	case 0:
		return nil, fmt.Errorf("network %s not found: %w", ref, ErrNotExist)
	}
	return nil, fmt.Errorf("network %s: %d network IDs start with it: %w", ref, len(byPrefix), ErrAmbiguous)
}
