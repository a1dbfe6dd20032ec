/* The part of the macOS metrics that needs Apple's frameworks:
 * SystemConfiguration and IOKit for the kind of each network interface
 * (Wi-Fi, Ethernet, Thunderbolt, a Thunderbolt bridge), and IOKit's
 * block-storage statistics for disk I/O. Everything else is in
 * metrics_darwin.c, which scripts/check-macos.sh compiles on Linux; this
 * file needs the frameworks' headers, which only a Mac has, and is built
 * by the macOS workflow. */
#include "metrics_darwin.h"

#include <CoreFoundation/CoreFoundation.h>
#include <IOKit/IOBSD.h>
#include <IOKit/IOKitLib.h>
#include <IOKit/storage/IOBlockStorageDriver.h>
#include <IOKit/storage/IOMedia.h>
#include <SystemConfiguration/SystemConfiguration.h>
#include <errno.h>
#include <string.h>

/* Whether the BSD interface sits on a Thunderbolt controller: its IOKit
 * ancestry names a Thunderbolt class. This looks at drivers, not at the
 * user-visible (and localised) port names. */
static bool is_thunderbolt(const char *bsd_name) {
  io_service_t service = IOServiceGetMatchingService(
      MACH_PORT_NULL, IOBSDNameMatching(MACH_PORT_NULL, 0, bsd_name));
  if (service == IO_OBJECT_NULL)
    return false;
  bool found = false;
  io_registry_entry_t entry = service;
  IOObjectRetain(entry);
  for (int depth = 0; depth < 12 && entry != IO_OBJECT_NULL && !found;
       depth++) {
    io_name_t class_name;
    if (IOObjectGetClass(entry, class_name) == KERN_SUCCESS &&
        strstr(class_name, "Thunderbolt") != NULL)
      found = true;
    io_registry_entry_t parent = IO_OBJECT_NULL;
    if (IORegistryEntryGetParentEntry(entry, kIOServicePlane, &parent) !=
        KERN_SUCCESS)
      parent = IO_OBJECT_NULL;
    IOObjectRelease(entry);
    entry = parent;
  }
  if (entry != IO_OBJECT_NULL)
    IOObjectRelease(entry);
  IOObjectRelease(service);
  return found;
}

static bool cf_to_cstr(CFStringRef s, char *out, size_t cap) {
  return s != NULL &&
         CFStringGetCString(s, out, (CFIndex)cap, kCFStringEncodingUTF8);
}

/* Rebuilds the name -> kind table: Wi-Fi and Ethernet from the interface
 * type, Thunderbolt from the driver, and a bridge is Thunderbolt when its
 * members are (the "Thunderbolt Bridge" service is found by its members,
 * never by its name). */
size_t nl_darwin_link_kinds(nl_darwin_kind *kinds, size_t max) {
  size_t count = 0;
  CFArrayRef all = SCNetworkInterfaceCopyAll();
  if (all != NULL) {
    for (CFIndex i = 0; i < CFArrayGetCount(all) && count < max; i++) {
      SCNetworkInterfaceRef nif =
          (SCNetworkInterfaceRef)CFArrayGetValueAtIndex(all, i);
      nl_darwin_kind e;
      if (!cf_to_cstr(SCNetworkInterfaceGetBSDName(nif), e.name, sizeof e.name))
        continue;
      CFStringRef type = SCNetworkInterfaceGetInterfaceType(nif);
      if (type != NULL && CFEqual(type, kSCNetworkInterfaceTypeIEEE80211))
        e.kind = NL_LINK_WIFI;
      else if (is_thunderbolt(e.name))
        e.kind = NL_LINK_THUNDERBOLT;
      else if (type != NULL && CFEqual(type, kSCNetworkInterfaceTypeEthernet))
        e.kind = NL_LINK_ETHERNET;
      else
        e.kind = NL_LINK_OTHER;
      kinds[count++] = e;
    }
    CFRelease(all);
  }
  /* Bridge membership: the SCBridgeInterface functions are private, so it
   * is read from the network preferences through the public SCPreferences
   * API: VirtualNetworkInterfaces -> Bridge -> bridgeN -> Interfaces. */
  SCPreferencesRef prefs = SCPreferencesCreate(NULL, CFSTR("nodelua"), NULL);
  if (prefs == NULL)
    return count;
  CFDictionaryRef virtuals = (CFDictionaryRef)SCPreferencesGetValue(
      prefs, CFSTR("VirtualNetworkInterfaces"));
  CFDictionaryRef bridges =
      virtuals != NULL && CFGetTypeID(virtuals) == CFDictionaryGetTypeID()
          ? (CFDictionaryRef)CFDictionaryGetValue(virtuals, CFSTR("Bridge"))
          : NULL;
  if (bridges != NULL && CFGetTypeID(bridges) == CFDictionaryGetTypeID()) {
    CFIndex n = CFDictionaryGetCount(bridges);
    if (n > 16)
      n = 16; /* CFDictionaryGetKeysAndValues fills every entry */
    const void *keys[16], *values[16];
    if (CFDictionaryGetCount(bridges) > 16)
      n = 0;
    else
      CFDictionaryGetKeysAndValues(bridges, keys, values);
    for (CFIndex i = 0; i < n && count < max; i++) {
      nl_darwin_kind e = {.kind = NL_LINK_BRIDGE};
      if (CFGetTypeID(keys[i]) != CFStringGetTypeID() ||
          !cf_to_cstr((CFStringRef)keys[i], e.name, sizeof e.name) ||
          CFGetTypeID(values[i]) != CFDictionaryGetTypeID())
        continue;
      CFArrayRef members = (CFArrayRef)CFDictionaryGetValue(
          (CFDictionaryRef)values[i], CFSTR("Interfaces"));
      for (CFIndex j = 0;
           members != NULL && CFGetTypeID(members) == CFArrayGetTypeID() &&
           j < CFArrayGetCount(members);
           j++) {
        char member[32];
        CFTypeRef m = CFArrayGetValueAtIndex(members, j);
        if (CFGetTypeID(m) == CFStringGetTypeID() &&
            cf_to_cstr((CFStringRef)m, member, sizeof member) &&
            is_thunderbolt(member))
          e.kind = NL_LINK_THUNDERBOLT;
      }
      kinds[count++] = e;
    }
  }
  CFRelease(prefs);
  return count;
}

static uint64_t dict_u64(CFDictionaryRef d, const char *key) {
  CFStringRef k = CFStringCreateWithCString(NULL, key, kCFStringEncodingUTF8);
  CFNumberRef n = k ? (CFNumberRef)CFDictionaryGetValue(d, k) : NULL;
  uint64_t v = NL_ABSENT;
  if (n != NULL && CFGetTypeID(n) == CFNumberGetTypeID())
    CFNumberGetValue(n, kCFNumberSInt64Type, &v);
  if (k)
    CFRelease(k);
  return v;
}

/* Disk I/O of every whole disk: its IOMedia's BSD name and the statistics
 * of the IOBlockStorageDriver above it. */
int nl_darwin_sample_disks(nl_metrics *m) {
  nl_storage_sample *st = &m->snap.storage;
  st->disk_count = 0;
  CFMutableDictionaryRef match = IOServiceMatching(kIOMediaClass);
  if (match == NULL)
    return 0;
  CFDictionarySetValue(match, CFSTR(kIOMediaWholeKey), kCFBooleanTrue);
  io_iterator_t iter;
  if (IOServiceGetMatchingServices(MACH_PORT_NULL, match, &iter) !=
      KERN_SUCCESS)
    return 0;
  size_t count = 0;
  int rc = 0;
  io_registry_entry_t media;
  while ((media = IOIteratorNext(iter)) != IO_OBJECT_NULL) {
    io_registry_entry_t driver = IO_OBJECT_NULL;
    CFStringRef bsd = IORegistryEntryCreateCFProperty(
        media, CFSTR(kIOBSDNameKey), kCFAllocatorDefault, 0);
    if (bsd != NULL &&
        IORegistryEntryGetParentEntry(media, kIOServicePlane, &driver) ==
            KERN_SUCCESS &&
        IOObjectConformsTo(driver, "IOBlockStorageDriver")) {
      CFDictionaryRef stats = IORegistryEntryCreateCFProperty(
          driver, CFSTR(kIOBlockStorageDriverStatisticsKey),
          kCFAllocatorDefault, 0);
      if (stats != NULL) {
        if (nl_metrics_reserve((void **)&st->disks, &st->disk_cap, count + 1,
                               sizeof *st->disks) != 0) {
          rc = -ENOMEM;
        } else {
          nl_disk *d = &st->disks[count++];
          cf_to_cstr(bsd, d->name, sizeof d->name);
          d->counters[NL_DISK_READ_BYTES] =
              dict_u64(stats, kIOBlockStorageDriverStatisticsBytesReadKey);
          d->counters[NL_DISK_WRITE_BYTES] =
              dict_u64(stats, kIOBlockStorageDriverStatisticsBytesWrittenKey);
          d->counters[NL_DISK_READS] =
              dict_u64(stats, kIOBlockStorageDriverStatisticsReadsKey);
          d->counters[NL_DISK_WRITES] =
              dict_u64(stats, kIOBlockStorageDriverStatisticsWritesKey);
          d->counters[NL_DISK_BUSY_MS] = NL_ABSENT;
        }
        CFRelease(stats);
      }
    }
    if (driver != IO_OBJECT_NULL)
      IOObjectRelease(driver);
    if (bsd != NULL)
      CFRelease(bsd);
    IOObjectRelease(media);
    if (rc != 0)
      break;
  }
  IOObjectRelease(iter);
  st->disk_count = count;
  return rc;
}
