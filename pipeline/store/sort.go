package store

import "sort"

func sortDomains(ds []*Domain) {
	sort.Slice(ds, func(i, j int) bool { return ds[i].Name < ds[j].Name })
}
