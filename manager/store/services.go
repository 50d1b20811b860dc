package store

import (
	"fmt"
	"strings"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// serviceNameIndex indexes services by their lower-cased spec name, so
// names are unique regardless of case, as docker's are.
var serviceNameIndex = nameIndex{what: "service", fold: true, get: func(obj any) (string, bool) {
	s, ok := obj.(*shoalpb.Service)
	return s.GetSpec().GetName(), ok
}}

func (tx readTx) Service(id string) *shoalpb.Service {
	o, err := tx.txn.First(tableService, indexID, id)
	if err != nil || o == nil {
		return nil
	}
	return o.(*shoalpb.Service)
}

func (tx readTx) Services() []*shoalpb.Service {
	it, err := tx.txn.Get(tableService, indexID)
	if err != nil {
		return nil
	}
	var out []*shoalpb.Service
	for o := it.Next(); o != nil; o = it.Next() {
		out = append(out, o.(*shoalpb.Service))
	}
	return out
}

func (tx readTx) ServiceByName(name string) *shoalpb.Service {
	o, err := tx.txn.First(tableService, indexName, name)
	if err != nil || o == nil {
		return nil
	}
	return o.(*shoalpb.Service)
}

func (tx readTx) FindService(ref string) (*shoalpb.Service, error) {
	if ref == "" {
		return nil, fmt.Errorf("service reference is empty: %w", ErrNotExist)
	}
	if s := tx.Service(ref); s != nil {
		return s, nil
	}
	if s := tx.ServiceByName(ref); s != nil {
		return s, nil
	}
	var byPrefix []*shoalpb.Service
	for _, s := range tx.Services() {
		if strings.HasPrefix(s.Id, ref) {
			byPrefix = append(byPrefix, s)
		}
	}
	switch len(byPrefix) {
	case 1:
		return byPrefix[0], nil
	case 0:
		return nil, fmt.Errorf("service %s not found: %w", ref, ErrNotExist)
	}
	return nil, fmt.Errorf("service %s: %d service IDs start with it: %w", ref, len(byPrefix), ErrAmbiguous)
}
