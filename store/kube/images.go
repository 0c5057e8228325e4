package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/deploybot/deploybot/store"
)

// Annotations of the image records' objects, for people reading them with
// kubectl; the records themselves say their environment and service.
const (
	AnnotationEnv     = "deploybot.dev/env"
	AnnotationService = "deploybot.dev/service"

	// imagesKey is the data key of the records, a JSON array newest first.
	imagesKey = "images.json"
)

// imagesName is the ConfigMap of env's and service's image records: a
// readable part ("prod-packit-worker") and a hash of both names, told
// apart by their lengths, that makes it unique.
func (s *Store) imagesName(env, service string) string {
	readable := strings.Trim(unsafeRun.ReplaceAllString(strings.ToLower(env+"-"+service), "-"), "-")
	if len(readable) > 60 {
		readable = strings.TrimRight(readable[:60], "-")
	}
	sum := hashHex(strconv.Itoa(len(env))+":"+env+"/"+service, 16)
	if readable == "" {
		return s.instance + "-images-" + sum
	}
	return s.instance + "-images-" + readable + "-" + sum
}

// ImagesName is the name of the ConfigMap holding env's and service's image records.
func (s *Store) ImagesName(env, service string) string { return s.imagesName(env, service) }

// RecordImage implements store.Store: a compare-and-swap on the one
// ConfigMap of rec's environment and service, created on first use; on 409
// Conflict (or a racing create) it reads again and merges again. A record
// that changes nothing writes nothing.
func (s *Store) RecordImage(ctx context.Context, rec store.ImageRecord) error {
	if err := rec.Check(); err != nil {
		return fmt.Errorf("recording an image: %w", err)
	}
	wrap := func(err error) error {
		return fmt.Errorf("recording image %s of %s/%s: %w", rec.Digest, rec.Env, rec.Service, err)
	}
	name := s.imagesName(rec.Env, rec.Service)
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		cm, err := s.cms().Get(ctx, name, metav1.GetOptions{})
		var cur []store.ImageRecord
		switch {
		case apierrors.IsNotFound(err):
			cm = nil
		case err != nil:
			return wrap(err)
		default:
			if cur, err = s.decodeImages(cm, rec.Env, rec.Service); err != nil {
				return wrap(err)
			}
		}
		next, changed := store.MergeImage(cur, rec)
		if !changed {
			return nil
		}
		b, err := json.Marshal(next)
		if err != nil {
			return wrap(fmt.Errorf("encoding the records: %w", err))
		}
		if cm == nil {
			cm = &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns, Labels: s.labels(KindImages),
					Annotations: map[string]string{AnnotationEnv: rec.Env, AnnotationService: rec.Service}},
				Data: map[string]string{imagesKey: string(b)},
			}
			_, err = s.cms().Create(ctx, cm, metav1.CreateOptions{})
		} else {
			if cm.Data == nil {
				cm.Data = map[string]string{}
			}
			cm.Data[imagesKey] = string(b)
			_, err = s.cms().Update(ctx, cm, metav1.UpdateOptions{}) // with the resourceVersion read
		}
		switch {
		case err == nil:
			return nil
		case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err), apierrors.IsNotFound(err):
			backoff(ctx, attempt)
		default:
			return wrap(err)
		}
	}
}

// Images implements store.Store: one Get.
func (s *Store) Images(ctx context.Context, env, service string) ([]store.ImageRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := []store.ImageRecord{}
	if env == "" || service == "" {
		return out, nil
	}
	cm, err := s.cms().Get(ctx, s.imagesName(env, service), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return out, nil
	case err != nil:
		return nil, fmt.Errorf("reading the images of %s/%s: %w", env, service, err)
	}
	recs, err := s.decodeImages(cm, env, service)
	if err != nil {
		return nil, fmt.Errorf("reading the images of %s/%s: %w", env, service, err)
	}
	out = append(out, recs...)
	store.SortImages(out)
	return out, nil
}

// decodeImages decodes and checks the records of an images ConfigMap read
// as env's and service's: damage (no or `null` records, a record of
// another service, a digest twice) is an error naming the ConfigMap, never
// an empty history.
func (s *Store) decodeImages(cm *corev1.ConfigMap, env, service string) ([]store.ImageRecord, error) {
	v, ok := cm.Data[imagesKey]
	if !ok {
		return nil, fmt.Errorf("decoding image records from ConfigMap %s: it has no %s", cm.Name, imagesKey)
	}
	var recs []store.ImageRecord
	if err := json.Unmarshal([]byte(v), &recs); err != nil {
		return nil, fmt.Errorf("decoding image records from ConfigMap %s: %w", cm.Name, err)
	}
	if recs == nil {
		return nil, fmt.Errorf("decoding image records from ConfigMap %s: the records are null", cm.Name)
	}
	if err := store.CheckImageRecords(recs, env, service); err != nil {
		return nil, fmt.Errorf("decoding image records from ConfigMap %s: %w", cm.Name, err)
	}
	store.SortImages(recs)
	return recs, nil
}
