package order

import "context"

// CommitAndSave exposes the one-step commit of the stores that have it to
// the store tests; ok is false for a store without it.
func CommitAndSave(ctx context.Context, st Store, next *Order, before int64, old Status) (ok bool, err error) {
	cs, has := st.(commitSaver)
	if !has {
		return false, nil
	}
	err = cs.commitAndSave(ctx, next, before, old)
	if err == errStepByStep {
		return false, nil
	}
	return true, err
}
