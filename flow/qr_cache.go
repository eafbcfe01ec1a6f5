package flow

import (
	"sync"
	"time"
)

// qrCache keeps drawn QR images, so that asking for one again costs a map
// lookup instead of an encoding. An image is kept until its code expires;
// the cache is bounded, and when full it draws without keeping.
type qrCache struct {
	mu      sync.Mutex
	entries map[string]qrImage
}

type qrImage struct {
	body        []byte
	contentType string
	expires     time.Time
}

// maxQRImages bounds the cache: a few hundred kilobytes of images.
const maxQRImages = 1024

// get returns the image kept under key, if it is still live at now.
func (c *qrCache) get(key string, now time.Time) (qrImage, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	img, ok := c.entries[key]
	if ok && !now.Before(img.expires) {
		delete(c.entries, key)
		return qrImage{}, false
	}
	return img, ok
}

// put keeps img under key, first dropping images whose codes have ended
// when the cache is full.
func (c *qrCache) put(key string, img qrImage, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = make(map[string]qrImage)
	}
	if len(c.entries) >= maxQRImages {
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= maxQRImages {
			return
		}
	}
	c.entries[key] = img
}
